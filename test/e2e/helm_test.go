package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/chartsource/charttest"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/workset"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// webChart is a chart of the application: its namespace, a Deployment
// whose image tag and replicas come from values, and a ConfigMap naming
// the chart's version.
func webChart(version string) *chart.Chart {
	return charttest.Chart("web", version, "image: {repository: example.com/web, tag: \"1\"}\nreplicas: 1\n", map[string]string{
		"namespace.yaml": `apiVersion: v1
kind: Namespace
metadata: {name: {{ .Release.Namespace }}}
`,
		"deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}, namespace: {{ .Release.Namespace }}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
`,
		"configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata: {name: {{ .Release.Name }}-chart, namespace: {{ .Release.Namespace }}}
data: {version: {{ .Chart.Version | quote }}}
`,
		"NOTES.txt": "web is installed.\n",
	})
}

// TestHelmChartRollout delivers a Helm chart, served by the test from a
// private chart repository, through a real hub to three test-bed clusters
// with real agents: chart 1.0.0 reaches every cluster, the canary group
// first; the upgrade to chart 2.0.0 with new values (image tag 2, two
// replicas) is revision 2 and goes stage by stage — the canary, then each
// group after its approval — every stage gated on the agents' telemetry
// (the Deployment's available pods at the hub); a version the repository
// lacks leaves revision 2 running with ChartNotFound in status.
func TestHelmChartRollout(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "helmhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "helm", 3, testbed.ClusterOptions{Nodes: 1})
	ca := testbed.NewCA(t, "helm-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
	}))
	repo := charttest.Serve(t, "fleet", "chart-secret", webChart("1.0.0"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "helm"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	names := []string{"helm-a", "helm-b", "helm-c"}
	kubes := map[string]*kubernetes.Clientset{}
	for i, c := range clusters {
		joinAgent(t, bin, hb.AgentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
		kubes[names[i]] = kubernetes.NewForConfigOrDie(c.RESTConfig)
	}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	// A stage's new pods take a few collection intervals to be available
	// at the hub, longer on a busy machine: the measurements before that
	// see 0, which the failure limit tolerates as a gate for a rolling
	// Deployment must.
	gate := fleetv1.RolloutGate{Name: "available", SuccessCondition: "value >= 1", Count: 2, InconclusiveLimit: 10, FailureLimit: 4,
		Interval: metav1.Duration{Duration: 2 * time.Second}, InitialDelay: metav1.Duration{Duration: 4 * time.Second},
		Query: `min by (cluster) (k8s_deployment_pod_available{cluster=~"{{ .Clusters }}",k8s_namespace_name="web",k8s_deployment_name="web"})`}
	strategy := fleetv1.RolloutStrategy{Type: workset.RolloutProgressivePerGroup, MandatoryDecisionGroups: []fleetv1.MandatoryDecisionGroup{{GroupIndex: 0}},
		MinSuccessTime: metav1.Duration{Duration: 3 * time.Second}, ProgressDeadline: &metav1.Duration{Duration: 2 * time.Minute},
		Gates: []fleetv1.RolloutGate{gate}, FailureStrategy: workset.FailurePause}
	for _, o := range []client.Object{
		&fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "helm"}},
		&fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: fleetv1.PlacementSpec{ClusterSets: []string{"helm"}, DecisionStrategy: fleetv1.DecisionStrategy{ClustersPerDecisionGroup: 1}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "charts"},
			Data: map[string][]byte{"username": []byte("fleet"), "password": []byte("chart-secret")}},
		&fleetv1.ManifestWorkSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: fleetv1.ManifestWorkSetSpec{
				ManifestWorkTemplate: fleetv1.ManifestWorkSpec{ManifestConfigs: []fleetv1.ManifestConfigOption{{
					ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "web", Name: "web"},
					FeedbackRules:      []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}}}}},
				Chart: &fleetv1.HelmChartSource{RepoURL: repo.URL, Chart: "web", Version: "1.0.0", Namespace: "web",
					CredentialsSecretRef: &fleetv1.LocalSecretReference{Name: "charts"}},
				PlacementRefs: []fleetv1.PlacementRef{{Name: "web", RolloutStrategy: strategy}}}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	set := func() *fleetv1.ManifestWorkSet {
		s := &fleetv1.ManifestWorkSet{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: "web"}, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	wait := func(revision int64, phase fleetv1.RolloutPhase) *fleetv1.ManifestWorkSet {
		t.Helper()
		var s *fleetv1.ManifestWorkSet
		testutil.Eventually(t, 3*time.Minute, func() error {
			s = set()
			if ro := s.Status.Rollout; ro == nil || ro.Revision != revision || ro.Phase != phase {
				return fmt.Errorf("rollout %+v, want revision %d %s", ro, revision, phase)
			}
			return nil
		})
		return s
	}
	// deployed reads each cluster's Deployment: image tag and chart version.
	deployed := func() map[string]string {
		out := map[string]string{}
		for n, c := range kubes {
			d, err := c.AppsV1().Deployments("web").Get(ctx, "web", metav1.GetOptions{})
			cm, err2 := c.CoreV1().ConfigMaps("web").Get(ctx, "web-chart", metav1.GetOptions{})
			if err != nil || err2 != nil {
				out[n] = "none"
				continue
			}
			img := d.Spec.Template.Spec.Containers[0].Image
			out[n] = fmt.Sprintf("%s×%d chart %s", img[strings.LastIndex(img, ":")+1:], *d.Spec.Replicas, cm.Data["version"])
		}
		return out
	}
	expect := func(want map[string]string) {
		t.Helper()
		testutil.Eventually(t, time.Minute, func() error {
			if got := deployed(); fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("clusters run %v, want %v", got, want)
			}
			return nil
		})
	}
	v1, v2 := "1×1 chart 1.0.0", "2×2 chart 2.0.0"

	// Chart 1.0.0, delivered stage by stage.
	start := time.Now()
	s := wait(1, fleetv1.RolloutSucceeded)
	t.Logf("chart 1.0.0 delivered to 3 clusters in %d stages in %s", len(s.Status.Rollout.Stages), time.Since(start).Round(100*time.Millisecond))
	order := helmStageClusters(t, s)
	expect(map[string]string{names[0]: v1, names[1]: v1, names[2]: v1})
	if c := meta.FindStatusCondition(s.Status.Conditions, fleetv1.ConditionChartRendered); c == nil || c.Status != metav1.ConditionTrue ||
		!strings.Contains(c.Message, "chart web 1.0.0 from "+repo.URL+"/web-1.0.0.tgz: 3 objects in revision 1") {
		t.Errorf("ChartRendered %+v", c)
	}

	// The upgrade: chart 2.0.0, image tag 2, two replicas. The canary
	// stage runs at once; each later stage waits for its approval.
	repo.Add(webChart("2.0.0"))
	testutil.Eventually(t, 10*time.Second, func() error {
		s := set()
		s.Spec.Chart.Version = "2.0.0"
		s.Spec.Chart.Values = &runtime.RawExtension{Raw: helmJSON(t, map[string]any{"image": map[string]any{"tag": "2"}, "replicas": 2})}
		s.Spec.PlacementRefs[0].RolloutStrategy.ApprovalBeforeStages = []int32{1, 2}
		return kube.Update(ctx, s)
	})
	start = time.Now()
	s = wait(2, fleetv1.RolloutWaitingApproval)
	expect(map[string]string{order[0]: v2, order[1]: v1, order[2]: v1})
	if g := s.Status.Rollout.Stages[0]; g.Phase != fleetv1.StageSucceeded || len(g.Gates) == 0 {
		t.Errorf("canary stage %+v: want succeeded with its gate measured", g)
	}
	for stage := 1; stage <= 2; stage++ {
		if err := kube.Create(ctx, &fleetv1.RolloutApproval{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("web-2-%d", stage)},
			Spec: fleetv1.RolloutApprovalSpec{ManifestWorkSet: "web", Revision: 2, Stage: int32(stage), Approver: "e2e"}}); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for i, c := range order {
			want[c] = v1
			if i <= stage {
				want[c] = v2
			}
		}
		expect(want)
		if stage == 1 {
			wait(2, fleetv1.RolloutWaitingApproval)
		}
	}
	s = wait(2, fleetv1.RolloutSucceeded)
	t.Logf("chart 2.0.0 rolled out stage by stage in %s", time.Since(start).Round(100*time.Millisecond))
	for i, g := range s.Status.Rollout.Stages {
		if g.Phase != fleetv1.StageSucceeded || len(g.Gates) == 0 || (i > 0 && !strings.Contains(g.ApprovedBy, "e2e")) {
			t.Errorf("stage %d %+v: want succeeded, gated, approved after the canary", i, g)
		}
		if i > 0 && (g.StartTime == nil || s.Status.Rollout.Stages[i-1].CompletionTime == nil || g.StartTime.Before(s.Status.Rollout.Stages[i-1].CompletionTime)) {
			t.Errorf("stage %d started %v, before stage %d completed", i, g.StartTime, i-1)
		}
	}

	// A version the repository lacks: revision 2 goes on.
	testutil.Eventually(t, 10*time.Second, func() error {
		s := set()
		s.Spec.Chart.Version = "3.0.0"
		return kube.Update(ctx, s)
	})
	testutil.Eventually(t, time.Minute, func() error {
		c := meta.FindStatusCondition(set().Status.Conditions, fleetv1.ConditionChartRendered)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "ChartNotFound" || !strings.Contains(c.Message, "revision 2 goes on") {
			return fmt.Errorf("ChartRendered %+v", c)
		}
		return nil
	})
	if s := set(); s.Status.CurrentRevision != 2 || s.Status.Rollout.Phase != fleetv1.RolloutSucceeded {
		t.Errorf("revision %d %s, want 2 Succeeded", s.Status.CurrentRevision, s.Status.Rollout.Phase)
	}
	expect(map[string]string{names[0]: v2, names[1]: v2, names[2]: v2})
}

// helmStageClusters lists the rollout's clusters in stage order.
func helmStageClusters(t *testing.T, s *fleetv1.ManifestWorkSet) []string {
	t.Helper()
	byStage := map[int32][]string{}
	for _, c := range s.Status.Rollout.Clusters {
		byStage[c.Stage] = append(byStage[c.Stage], c.Cluster)
	}
	var out []string
	for i := range s.Status.Rollout.Stages {
		if len(byStage[int32(i)]) != 1 {
			t.Fatalf("stage %d has clusters %v, want one", i, byStage[int32(i)])
		}
		out = append(out, byStage[int32(i)][0])
	}
	return out
}

func helmJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
