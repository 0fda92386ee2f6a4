package chartsource_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"

	"github.com/fleetpulse/fleetpulse/hub/chartsource"
	"github.com/fleetpulse/fleetpulse/hub/chartsource/charttest"
)

const webValues = `
image: {repository: nginx, tag: "1.25"}
replicas: 1
labels: {tier: web, team: shop}
`

var webTemplates = map[string]string{
	"deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
  labels: {{- toYaml .Values.labels | nindent 4 }}
spec:
  replicas: {{ .Values.replicas }}
  template:
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
`,
	"configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-settings
data:
  chart: {{ .Chart.Name }}-{{ .Chart.Version }}
---
# an empty document, as charts often leave behind
`,
	"hook.yaml": `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations: {"helm.sh/hook": pre-install}
spec: {}
`,
	"_helpers.tpl": `{{- define "web.name" -}}web{{- end -}}`,
	"NOTES.txt":    `Thanks for installing {{ .Release.Name }}.`,
}

func objects(t *testing.T, res *chartsource.Result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range res.Manifests {
		var o map[string]any
		require.NoError(t, json.Unmarshal(m, &o))
		out = append(out, o)
	}
	return out
}

func reason(err error) string {
	var e *chartsource.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return "not a chartsource.Error: " + err.Error()
}

// A chart from a repository renders as `helm template` would: the values
// merged over the chart's own, CRDs first, then the templates in install
// order, hooks, NOTES and partials left out.
func TestRenderFromRepository(t *testing.T) {
	ch := charttest.Chart("web", "1.0.0", webValues, webTemplates)
	ch.Files = append(ch.Files, &chart.File{Name: "crds/widgets.yaml", Data: []byte(`apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec: {group: example.com}
`)})
	r := charttest.Serve(t, "", "", ch, charttest.Chart("web", "0.9.0", webValues, webTemplates))
	res, err := chartsource.New(chartsource.Limits{}).Render(context.Background(), chartsource.Source{
		RepoURL: r.URL, Chart: "web", Version: "^1.0", ReleaseName: "shop", Namespace: "apps",
		Values: map[string]any{
			"image":    map[string]any{"tag": "1.27"},              // one key of a map, the other kept
			"labels":   map[string]any{"team": nil, "env": "prod"}, // null deletes a default
			"replicas": 3,
		},
	})
	require.NoError(t, err)
	require.Equal(t, "web", res.Chart)
	require.Equal(t, "1.0.0", res.Version)
	require.True(t, strings.HasPrefix(res.Digest, "sha256:"), res.Digest)
	require.Equal(t, 1, res.SkippedHooks)
	objs := objects(t, res)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o["kind"].(string))
	}
	require.Equal(t, []string{"CustomResourceDefinition", "ConfigMap", "Deployment"}, kinds)
	dep := objs[2]
	require.Equal(t, map[string]any{"name": "shop", "namespace": "apps", "labels": map[string]any{"tier": "web", "env": "prod"}}, dep["metadata"])
	require.EqualValues(t, 3, dep["spec"].(map[string]any)["replicas"])
	require.Contains(t, string(res.Manifests[2]), `"image":"nginx:1.27"`)
	require.Equal(t, "web-1.0.0", objs[1]["data"].(map[string]any)["chart"])
}

// Every failure names what was wrong, and credentials stay out of it.
func TestRenderErrors(t *testing.T) {
	good := charttest.Chart("web", "1.0.0", webValues, webTemplates)
	broken := charttest.Chart("broken", "1.0.0", "", map[string]string{"x.yaml": `{{ required "value name is required" .Values.name }}`})
	notObject := charttest.Chart("notobject", "1.0.0", "", map[string]string{"x.yaml": "just: a map\n"})
	many := charttest.Chart("many", "1.0.0", "", map[string]string{"x.yaml": `{{ range until 20 }}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-{{ . }}}
{{ end }}`})
	noise := make([]byte, 48<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise) // does not compress
	big := charttest.Chart("big", "1.0.0", "", map[string]string{"x.yaml": "# " + base64.StdEncoding.EncodeToString(noise)})
	slow := charttest.Chart("slow", "1.0.0", "", map[string]string{"x.yaml": `{{ range until 3000000 }}{{ end }}`})
	open := charttest.Serve(t, "", "", good, broken, notObject, many, big, slow)
	private := charttest.Serve(t, "fleet", "s3cret-pw", good)
	small := chartsource.Limits{MaxManifests: 10, MaxChartBytes: 32 << 10, RenderTimeout: time.Millisecond}

	for _, tc := range []struct {
		name   string
		limits chartsource.Limits
		src    chartsource.Source
		reason string
		msg    string
	}{
		{"no such chart", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL, Chart: "nope"}, chartsource.ReasonNotFound, "chart nope"},
		{"no such version", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL, Chart: "web", Version: "2.0.0"}, chartsource.ReasonNotFound, `version "2.0.0"`},
		{"not a repository", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL + "/nowhere", Chart: "web"}, chartsource.ReasonFetchFailed, "404"},
		{"bad URL", chartsource.Limits{}, chartsource.Source{RepoURL: "ftp://example.com", Chart: "web"}, chartsource.ReasonInvalid, "want http(s)"},
		{"credentials in the URL", chartsource.Limits{}, chartsource.Source{RepoURL: "https://u:pw@example.com/charts", Chart: "web"}, chartsource.ReasonInvalid, "Secret"},
		{"OCI without a version", chartsource.Limits{}, chartsource.Source{RepoURL: "oci://example.com/charts", Chart: "web"}, chartsource.ReasonInvalid, "needs a version"},
		{"no credentials", chartsource.Limits{}, chartsource.Source{RepoURL: private.URL, Chart: "web"}, chartsource.ReasonFetchFailed, "401"},
		{"wrong credentials", chartsource.Limits{}, chartsource.Source{RepoURL: private.URL, Chart: "web", Username: "fleet", Password: "guess"}, chartsource.ReasonFetchFailed, "401"},
		{"template fails", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL, Chart: "broken"}, chartsource.ReasonRenderFailed, "value name is required"},
		{"not an object", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL, Chart: "notobject"}, chartsource.ReasonRenderFailed, "without apiVersion"},
		{"values not a map where the chart wants one", chartsource.Limits{}, chartsource.Source{RepoURL: open.URL, Chart: "web", Values: map[string]any{"image": "nginx"}}, chartsource.ReasonRenderFailed, "web"},
		{"too many objects", small, chartsource.Source{RepoURL: open.URL, Chart: "many"}, chartsource.ReasonTooLarge, "more than 10 objects"},
		{"archive too large", small, chartsource.Source{RepoURL: open.URL, Chart: "big"}, chartsource.ReasonTooLarge, "size limit"},
		{"index too large", chartsource.Limits{MaxIndexBytes: 100}, chartsource.Source{RepoURL: open.URL, Chart: "web"}, chartsource.ReasonTooLarge, "size limit"},
		{"render too slow", small, chartsource.Source{RepoURL: open.URL, Chart: "slow"}, chartsource.ReasonRenderTimeout, "longer than 1ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := chartsource.New(tc.limits).Render(context.Background(), tc.src)
			require.Error(t, err)
			require.Equal(t, tc.reason, reason(err), err.Error())
			require.Contains(t, err.Error(), tc.msg)
			require.NotContains(t, err.Error(), "s3cret-pw")
		})
	}

	t.Run("right credentials", func(t *testing.T) {
		res, err := chartsource.New(chartsource.Limits{}).Render(context.Background(),
			chartsource.Source{RepoURL: private.URL, Chart: "web", Username: "fleet", Password: "s3cret-pw"})
		require.NoError(t, err)
		require.Len(t, res.Manifests, 2)
	})
	t.Run("archive that does not match the index's digest", func(t *testing.T) {
		r := charttest.Serve(t, "", "", good)
		r.WriteFile("web-1.0.0.tgz", []byte("not the chart"))
		_, err := chartsource.New(chartsource.Limits{}).Render(context.Background(), chartsource.Source{RepoURL: r.URL, Chart: "web"})
		require.Equal(t, chartsource.ReasonFetchFailed, reason(err), err.Error())
		require.Contains(t, err.Error(), "the index says")
	})
}

func TestLimitsValidate(t *testing.T) {
	require.NoError(t, chartsource.DefaultLimits().Validate())
	err := chartsource.Limits{}.Validate()
	require.Error(t, err)
	require.Contains(t, err.Error(), "maxChartBytes")
	require.Contains(t, err.Error(), "renderTimeout")
}
