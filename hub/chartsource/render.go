package chartsource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// Source is one chart to render.
type Source struct {
	// RepoURL is an HTTP(S) chart repository, or oci://host/path of a
	// registry where the chart is host/path/<chart>:<version>.
	RepoURL string
	// Chart is the chart's name.
	Chart string
	// Version is a version or, in an HTTP repository, a semver constraint
	// (the newest match wins); empty means the newest. OCI needs one.
	Version string
	// Values are merged over the chart's values.yaml, as `helm --values`.
	Values map[string]any
	// ReleaseName and Namespace are .Release.Name and .Release.Namespace.
	ReleaseName string
	Namespace   string
	// Username and Password authenticate to the repository or registry.
	Username, Password string
	// PlainHTTP reaches an OCI registry over plain HTTP.
	PlainHTTP bool
}

// Result is a rendered chart.
type Result struct {
	// Chart and Version name what was rendered (Version resolved from a
	// constraint); Digest is the archive's sha256:<hex>; URL where it came
	// from, without credentials.
	Chart, Version, Digest, URL string
	// Manifests are the objects as JSON: the chart's CRDs first, then its
	// templates in Helm's install order.
	Manifests []json.RawMessage
	// SkippedHooks counts the hook objects left out.
	SkippedHooks int
}

// Renderer fetches and renders charts within its limits. It is safe for
// concurrent use.
type Renderer struct {
	limits    Limits
	transport http.RoundTripper
}

// New builds a renderer; zero limits take their defaults.
func New(l Limits) *Renderer {
	d := DefaultLimits()
	for _, f := range []struct{ v, def *int64 }{{&l.MaxIndexBytes, &d.MaxIndexBytes}, {&l.MaxChartBytes, &d.MaxChartBytes}, {&l.MaxRenderedBytes, &d.MaxRenderedBytes}} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if l.FetchTimeout <= 0 {
		l.FetchTimeout = d.FetchTimeout
	}
	if l.RenderTimeout <= 0 {
		l.RenderTimeout = d.RenderTimeout
	}
	if l.MaxManifests <= 0 {
		l.MaxManifests = d.MaxManifests
	}
	return &Renderer{limits: l, transport: http.DefaultTransport}
}

// Limits returns the renderer's limits.
func (r *Renderer) Limits() Limits { return r.limits }

// Render fetches the chart and renders it.
func (r *Renderer) Render(ctx context.Context, src Source) (*Result, error) {
	if err := src.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.limits.FetchTimeout)
	defer cancel()
	var f *fetched
	var err error
	if strings.HasPrefix(src.RepoURL, "oci://") {
		f, err = r.fetchOCI(&src)
	} else {
		f, err = r.fetchRepo(ctx, &src)
	}
	if err != nil {
		return nil, err
	}
	ch, err := loader.LoadArchive(bytes.NewReader(f.archive))
	if err != nil {
		return nil, fail(ReasonLoadFailed, "load chart %s %s from %s: %v", src.Chart, f.version, f.url, err)
	}
	res, err := r.RenderChart(ctx, ch, src)
	if err != nil {
		return nil, err
	}
	res.Digest, res.URL = f.digest, f.url
	return res, nil
}

func (s *Source) validate() error {
	u, err := url.Parse(s.RepoURL)
	switch {
	case s.Chart == "" || strings.Contains(s.Chart, "/"):
		return fail(ReasonInvalid, "chart name %q: want a name without slashes", s.Chart)
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "oci"):
		return fail(ReasonInvalid, "repository URL %q: want http(s)://host/... or oci://host/...", redact(s.RepoURL))
	case u.User != nil:
		return fail(ReasonInvalid, "repository URL %s carries credentials: give them in a Secret", redact(s.RepoURL))
	case u.Scheme == "oci" && s.Version == "":
		return fail(ReasonInvalid, "chart %s from %s: an OCI chart needs a version", s.Chart, s.RepoURL)
	}
	return nil
}

// RenderChart renders a loaded chart: the values merged over the chart's
// own (and checked against its values.schema.json), then its templates.
func (r *Renderer) RenderChart(ctx context.Context, ch *chart.Chart, src Source) (*Result, error) {
	name := ch.Name()
	opts := chartutil.ReleaseOptions{Name: src.ReleaseName, Namespace: src.Namespace, Revision: 1, IsInstall: true}
	if opts.Name == "" {
		opts.Name = name
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	vals, err := chartutil.ToRenderValues(ch, src.Values, opts, nil)
	if err != nil {
		return nil, fail(ReasonRenderFailed, "values for chart %s %s: %v", name, ch.Metadata.Version, err)
	}
	files, err := r.engine(ctx, ch, vals)
	if err != nil {
		return nil, err
	}
	for name := range files {
		// Notes are for a person running helm, not objects (as Helm's install drops them).
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name)
		}
	}
	hooks, manifests, err := releaseutil.SortManifests(files, nil, releaseutil.InstallOrder)
	if err != nil {
		return nil, fail(ReasonRenderFailed, "chart %s %s: %v", name, ch.Metadata.Version, err)
	}
	res := &Result{Chart: name, Version: ch.Metadata.Version, SkippedHooks: len(hooks)}
	var size int64
	add := func(source, doc string) error {
		j, err := toObject(doc)
		if err != nil {
			return fail(ReasonRenderFailed, "chart %s %s: %s: %v", name, ch.Metadata.Version, source, err)
		}
		if j == nil {
			return nil
		}
		res.Manifests = append(res.Manifests, j)
		size += int64(len(j))
		if len(res.Manifests) > r.limits.MaxManifests {
			return fail(ReasonTooLarge, "chart %s %s renders more than %d objects", name, ch.Metadata.Version, r.limits.MaxManifests)
		}
		if size > r.limits.MaxRenderedBytes {
			return fail(ReasonTooLarge, "chart %s %s renders more than %d bytes of objects", name, ch.Metadata.Version, r.limits.MaxRenderedBytes)
		}
		return nil
	}
	for _, crd := range ch.CRDObjects() {
		for _, doc := range splitOrdered(string(crd.File.Data)) {
			if err := add(crd.Filename, doc); err != nil {
				return nil, err
			}
		}
	}
	for _, m := range manifests {
		if err := add(m.Name, m.Content); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// engine runs Helm's template engine within the render time limit. A
// template past the limit keeps its goroutine until it ends: Go templates
// cannot be stopped, only abandoned.
func (r *Renderer) engine(ctx context.Context, ch *chart.Chart, vals chartutil.Values) (map[string]string, error) {
	type out struct {
		files map[string]string
		err   error
	}
	done := make(chan out, 1)
	go func() {
		files, err := engine.Render(ch, vals)
		done <- out{files, err}
	}()
	timer := time.NewTimer(r.limits.RenderTimeout)
	defer timer.Stop()
	select {
	case o := <-done:
		if o.err != nil {
			return nil, fail(ReasonRenderFailed, "render chart %s %s: %v", ch.Name(), ch.Metadata.Version, o.err)
		}
		return o.files, nil
	case <-timer.C:
		return nil, fail(ReasonRenderTimeout, "render chart %s %s: longer than %s", ch.Name(), ch.Metadata.Version, r.limits.RenderTimeout)
	case <-ctx.Done():
		return nil, fail(ReasonRenderTimeout, "render chart %s %s: %v", ch.Name(), ch.Metadata.Version, ctx.Err())
	}
}

// splitOrdered splits a multi-document YAML file, keeping the order.
func splitOrdered(s string) []string {
	docs := releaseutil.SplitManifests(s)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	index := func(k string) int { n, _ := strconv.Atoi(strings.TrimPrefix(k, "manifest-")); return n }
	sort.Slice(keys, func(i, j int) bool { return index(keys[i]) < index(keys[j]) })
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = docs[k]
	}
	return out
}

// toObject turns one YAML document into an object's JSON; nil for an empty
// document.
func toObject(doc string) (json.RawMessage, error) {
	j, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		return nil, fmt.Errorf("not YAML: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(j), []byte("null")) {
		return nil, nil
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, fmt.Errorf("not an object: %w", err)
	}
	if head.APIVersion == "" || head.Kind == "" || head.Metadata.Name == "" {
		return nil, fmt.Errorf("an object without apiVersion, kind or metadata.name: %.80s", strings.TrimSpace(doc))
	}
	return j, nil
}
