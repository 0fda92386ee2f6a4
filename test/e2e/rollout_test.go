package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/dashboards"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/workset"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// rolloutWorkload is the application at one version: its namespace and a
// Deployment of 2 replicas whose pods crash-loop when crash is set.
func rolloutWorkload(version int, crash bool) fleetv1.ManifestWorkSpec {
	labels := map[string]any{"app": "web", "version": strconv.Itoa(version)}
	if crash {
		labels[testbed.LabelCrashLoop] = "true"
	}
	ns := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "web"}}
	deploy := map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "web"},
		"spec": map[string]any{"replicas": 2, "selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": fmt.Sprintf("example.com/web:%d", version)}}}}}}
	var manifests []fleetv1.Manifest
	for _, o := range []map[string]any{ns, deploy} {
		raw, _ := json.Marshal(o)
		manifests = append(manifests, fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}})
	}
	return fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: manifests},
		ManifestConfigs: []fleetv1.ManifestConfigOption{{ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments",
			Namespace: "web", Name: "web"}, FeedbackRules: []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}}}}}
}

// restartGate fails a cluster whose namespace web has restarting
// containers (the agent's inventory, which reports every namespace, zeros
// included: a series that stopped being sent would stay visible for the
// query's lookback). One failed measurement is tolerated, for the pods of a
// version being replaced as the gate starts.
var restartGate = fleetv1.RolloutGate{Name: "restarts", FailureCondition: "value > 0", FailureLimit: 1, InconclusiveLimit: 2,
	Interval: metav1.Duration{Duration: 2 * time.Second}, InitialDelay: metav1.Duration{Duration: 5 * time.Second}, Count: 3,
	Query: `sum by (cluster) (k8s_cluster_container_restarts{cluster=~"{{ .Clusters }}",k8s_namespace_name="web"})`}

// TestRolloutsGateOnTelemetry delivers an application to three test-bed
// clusters with real agents, the canary group first, each stage gated by
// the agents' telemetry at the hub: v1 is delivered; v2's pods are healthy,
// pass the canary gate and roll on; v3's pods crash-loop on the canary,
// the gate fails it and Rollback takes it back to v2 before any other
// cluster sees v3, with the query, value and threshold in status, Events,
// metrics and `fleetpulse app status`; v4 crash-loops under Pause and
// `fleetpulse app rollback` restores v2; v6's extra gate finds no data and
// pauses until the data exists and `resume`; `pause` holds the next stage.
// The Rollouts dashboard's panels return data during the rollouts.
func TestRolloutsGateOnTelemetry(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "rollhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "roll", 3, testbed.ClusterOptions{Nodes: 1})
	ca := testbed.NewCA(t, "roll-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
		c.Alerting.EvaluationInterval = time.Second
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "roll"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	agentBin, cli := buildBinary(t, "fleetpulse-agent"), buildBinary(t, "fleetpulse")
	names := []string{"roll-a", "roll-b", "roll-c"}
	deployments := map[string]*kubernetes.Clientset{}
	for i, c := range clusters {
		joinAgent(t, agentBin, hb.AgentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
		deployments[names[i]] = kubernetes.NewForConfigOrDie(c.RESTConfig)
	}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	for _, o := range []client.Object{
		&fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "roll"}},
		&fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web"},
			Spec: fleetv1.PlacementSpec{ClusterSets: []string{"roll"}, DecisionStrategy: fleetv1.DecisionStrategy{ClustersPerDecisionGroup: 1}}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	strategy := fleetv1.RolloutStrategy{Type: workset.RolloutProgressivePerGroup, MandatoryDecisionGroups: []fleetv1.MandatoryDecisionGroup{{GroupIndex: 0}},
		MinSuccessTime: metav1.Duration{Duration: 8 * time.Second}, ProgressDeadline: &metav1.Duration{Duration: 2 * time.Minute},
		Gates: []fleetv1.RolloutGate{restartGate}, FailureStrategy: workset.FailureRollback}
	set := &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "web", Annotations: map[string]string{fleetv1.AnnotationChangeCause: "first release"}},
		Spec:       fleetv1.ManifestWorkSetSpec{ManifestWorkTemplate: rolloutWorkload(1, false), PlacementRefs: []fleetv1.PlacementRef{{Name: "web", RolloutStrategy: strategy}}},
	}
	if err := kube.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	r := &rolloutRig{t: t, ctx: ctx, kube: kube, cli: cli, kubeconfig: cp.KubeconfigPath, clusters: deployments}

	// v1, delivered group by group.
	start := time.Now()
	r.wait(1, fleetv1.RolloutSucceeded)
	t.Logf("v1 delivered to 3 clusters in 3 stages in %s", time.Since(start).Round(100*time.Millisecond))
	canary := r.stageClusters()[0]
	others := r.stageClusters()[1:]
	r.images(map[string]int{names[0]: 1, names[1]: 1, names[2]: 1})

	// v2: healthy, passes the canary's gate and rolls on.
	start = time.Now()
	r.edit(func(s *fleetv1.ManifestWorkSet) { s.Spec.ManifestWorkTemplate = rolloutWorkload(2, false) })
	r.wait(2, fleetv1.RolloutSucceeded)
	t.Logf("v2 rolled out in %s (3 stages, 8s soak each)", time.Since(start).Round(100*time.Millisecond))
	r.images(map[string]int{names[0]: 2, names[1]: 2, names[2]: 2})

	// v3 crash-loops: the canary's gate fails and Rollback takes it back.
	r.edit(func(s *fleetv1.ManifestWorkSet) { s.Spec.ManifestWorkTemplate = rolloutWorkload(3, true) })
	s := r.wait(3, fleetv1.RolloutRolledBack)
	c := clusterOf(s, canary)
	if d := c.DecidedBy; c.Verdict != fleetv1.VerdictRolledBack || d == nil || d.Signal != fleetv1.SignalGate || d.Gate != "restarts" ||
		d.Threshold != "value > 0" || !strings.Contains(d.Query, `cluster=~"`+canary+`"`) || d.Value == "" || d.Value == "0" {
		t.Errorf("canary %s: %s, decided by %+v; want rolled back by gate restarts with its query, value and threshold", canary, c.Verdict, d)
	}
	r.images(map[string]int{canary: 2, others[0]: 2, others[1]: 2})
	r.neverSaw(others, 3)
	r.event("RolledBack", `k8s_cluster_container_restarts{cluster=~"`+canary+`",k8s_namespace_name="web"}`)
	out := r.app("status", "web")
	for _, want := range []string{"rollout of revision 3: RolledBack", "restarts", "value > 0", "queries that decided:"} {
		if !strings.Contains(out, want) {
			t.Errorf("fleetpulse app status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("fleetpulse app status web:\n%s", out)
	prom := promAPI(t, hb.HTTPURL)
	waitForValue(t, prom, `fleetpulse_hub_rollout_phase{name="web",phase="RolledBack"}`, 1)
	r.panels(prom, start)

	// v4 crash-loops under Pause; rollback restores v2 as revision 5.
	r.edit(func(s *fleetv1.ManifestWorkSet) {
		s.Spec.ManifestWorkTemplate = rolloutWorkload(4, true)
		s.Spec.PlacementRefs[0].RolloutStrategy.FailureStrategy = workset.FailurePause
	})
	s = r.wait(4, fleetv1.RolloutPaused)
	if s.Status.Rollout.Reason != workset.ReasonFailureBudget || !strings.Contains(s.Status.Rollout.Message, canary+": gate restarts value") {
		t.Errorf("v4 paused %s: %s", s.Status.Rollout.Reason, s.Status.Rollout.Message)
	}
	r.images(map[string]int{canary: 4, others[0]: 2, others[1]: 2})
	r.app("rollback", "web", "--by=e2e")
	r.wait(5, fleetv1.RolloutSucceeded)
	r.images(map[string]int{canary: 2, others[0]: 2, others[1]: 2})
	if out := r.app("history", "web"); !strings.Contains(out, "rollback to revision 2") || !strings.Contains(out, "first release") {
		t.Errorf("fleetpulse app history:\n%s", out)
	}

	// v6 adds a gate whose series does not exist yet: no data pauses.
	probeGate := fleetv1.RolloutGate{Name: "probe", SuccessCondition: "value >= 1", Interval: metav1.Duration{Duration: 2 * time.Second},
		Query: `min by (cluster) (k8s_deployment_pod_available{cluster=~"{{ .Clusters }}",k8s_namespace_name="default",k8s_deployment_name="probe"})`}
	r.edit(func(s *fleetv1.ManifestWorkSet) {
		s.Spec.ManifestWorkTemplate = rolloutWorkload(6, false)
		s.Spec.PlacementRefs[0].RolloutStrategy.Gates = append(s.Spec.PlacementRefs[0].RolloutStrategy.Gates, probeGate)
	})
	s = r.wait(6, fleetv1.RolloutPaused)
	if c := clusterOf(s, canary); s.Status.Rollout.Reason != workset.ReasonInconclusive || c.DecidedBy == nil ||
		c.DecidedBy.Threshold != "no data (noData: Pause)" {
		t.Fatalf("v6: %s, canary %+v; want paused, inconclusive without data", s.Status.Rollout.Reason, c.DecidedBy)
	}
	for _, n := range names {
		if _, err := deployments[n].AppsV1().Deployments("default").Create(ctx, nginxDeployment("probe", 1), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitForValue(t, prom, `count(k8s_deployment_pod_available{k8s_deployment_name="probe"} >= 1)`, 3)
	r.app("resume", "web")
	// The canary passes; pause before the last stage starts.
	pollUntil(ctx, t, "v6 past the canary", func() (bool, string) {
		s := r.get()
		return s.Status.Rollout.CurrentStage >= 1, fmt.Sprintf("%+v", s.Status.Rollout)
	})
	r.app("pause", "web")
	s = r.wait(6, fleetv1.RolloutPaused)
	pollUntil(ctx, t, "the running stage done, the next held", func() (bool, string) {
		s = r.get()
		ro := s.Status.Rollout
		return ro.Reason == workset.ReasonPaused && ro.Stages[ro.CurrentStage].Phase == fleetv1.StagePending, fmt.Sprintf("%+v", ro)
	})
	held := r.stageClusters()[s.Status.Rollout.CurrentStage]
	if img := r.image(held); img != 2 {
		t.Errorf("%s runs v%d while the rollout is paused before its stage, want v2", held, img)
	}
	r.app("resume", "web")
	r.wait(6, fleetv1.RolloutSucceeded)
	r.images(map[string]int{names[0]: 6, names[1]: 6, names[2]: 6})
}

// rolloutRig reads and steers the set "web" of the test.
type rolloutRig struct {
	t          *testing.T
	ctx        context.Context
	kube       client.Client
	cli        string
	kubeconfig string
	clusters   map[string]*kubernetes.Clientset
}

func (r *rolloutRig) get() *fleetv1.ManifestWorkSet {
	s := &fleetv1.ManifestWorkSet{}
	if err := r.kube.Get(r.ctx, client.ObjectKey{Namespace: "default", Name: "web"}, s); err != nil {
		r.t.Fatal(err)
	}
	return s
}

func (r *rolloutRig) edit(change func(*fleetv1.ManifestWorkSet)) {
	r.t.Helper()
	pollUntil(r.ctx, r.t, "the set updated", func() (bool, string) {
		s := r.get()
		change(s)
		err := r.kube.Update(r.ctx, s)
		return err == nil, fmt.Sprint(err)
	})
}

// wait waits for the rollout of a revision to reach a phase.
func (r *rolloutRig) wait(revision int64, phase fleetv1.RolloutPhase) *fleetv1.ManifestWorkSet {
	r.t.Helper()
	var s *fleetv1.ManifestWorkSet
	pollUntil(r.ctx, r.t, fmt.Sprintf("revision %d %s", revision, phase), func() (bool, string) {
		s = r.get()
		ro := s.Status.Rollout
		if ro == nil {
			return false, "no rollout"
		}
		return ro.Revision == revision && ro.Phase == phase, fmt.Sprintf("revision %d %s (%s): %s", ro.Revision, ro.Phase, ro.Reason, ro.Message)
	})
	return s
}

// stageClusters names the rollout's clusters in stage order.
func (r *rolloutRig) stageClusters() []string {
	ro := r.get().Status.Rollout
	var out []string
	for _, c := range ro.Clusters {
		out = append(out, c.Cluster)
	}
	return out
}

func clusterOf(s *fleetv1.ManifestWorkSet, name string) fleetv1.ClusterRolloutStatus {
	for _, c := range s.Status.Rollout.Clusters {
		if c.Cluster == name {
			return c
		}
	}
	return fleetv1.ClusterRolloutStatus{}
}

// image is the version of the web Deployment's image on a cluster (0:
// none).
func (r *rolloutRig) image(cluster string) int {
	d, err := r.clusters[cluster].AppsV1().Deployments("web").Get(r.ctx, "web", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return versionOf(d)
}

func versionOf(d *appsv1.Deployment) int {
	img := d.Spec.Template.Spec.Containers[0].Image
	v, _ := strconv.Atoi(img[strings.LastIndex(img, ":")+1:])
	return v
}

// images waits until each cluster runs its version.
func (r *rolloutRig) images(want map[string]int) {
	r.t.Helper()
	pollUntil(r.ctx, r.t, fmt.Sprintf("images %v", want), func() (bool, string) {
		got := map[string]int{}
		for c := range want {
			got[c] = r.image(c)
		}
		return fmt.Sprint(got) == fmt.Sprint(want), fmt.Sprint(got)
	})
}

// neverSaw checks no ReplicaSet of the web Deployment on the clusters ever
// had the version's pod template.
func (r *rolloutRig) neverSaw(clusters []string, version int) {
	r.t.Helper()
	for _, c := range clusters {
		rss, err := r.clusters[c].AppsV1().ReplicaSets("web").List(r.ctx, metav1.ListOptions{})
		if err != nil {
			r.t.Fatal(err)
		}
		for _, rs := range rss.Items {
			if strings.HasSuffix(rs.Spec.Template.Spec.Containers[0].Image, ":"+strconv.Itoa(version)) {
				r.t.Errorf("%s has a ReplicaSet of v%d (%s); the rollout stopped before its stage", c, version, rs.Name)
			}
		}
	}
}

// event waits for a Warning Event of the reason on the set whose note
// has the text.
func (r *rolloutRig) event(reason, text string) {
	r.t.Helper()
	pollUntil(r.ctx, r.t, "a "+reason+" Event", func() (bool, string) {
		var evs eventsv1.EventList
		if err := r.kube.List(r.ctx, &evs, client.InNamespace("default")); err != nil {
			return false, err.Error()
		}
		var notes []string
		for _, e := range evs.Items {
			if e.Reason == reason && e.Regarding.Name == "web" && strings.Contains(e.Note, text) {
				return true, ""
			}
			notes = append(notes, e.Reason+": "+e.Note)
		}
		return false, strings.Join(notes, "\n")
	})
}

// app runs `fleetpulse app VERB ARGS` against the control plane.
func (r *rolloutRig) app(args ...string) string {
	r.t.Helper()
	cmd := exec.CommandContext(r.ctx, r.cli, append(append([]string{"app"}, args...), "--control-plane.kubeconfig="+r.kubeconfig)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("fleetpulse app %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// panels runs the Rollouts dashboard's panels against the hub until each
// returns data.
func (r *rolloutRig) panels(prom promv1.API, since time.Time) {
	r.t.Helper()
	all, err := dashboards.Load()
	if err != nil {
		r.t.Fatal(err)
	}
	var boards []dashboards.Dashboard
	for _, d := range all {
		if _, ok := inUseDashboards[d.Title]; ok {
			boards = append(boards, d)
		}
	}
	if len(boards) == 0 {
		r.t.Fatal("no Rollouts dashboard")
	}
	deadline := time.Now().Add(time.Minute)
	for {
		failures := runPanels(r.t, prom, boards, since)
		if len(failures) == 0 {
			return
		}
		if time.Now().After(deadline) {
			sort.Strings(failures)
			r.t.Errorf("%d Rollouts panel queries failed or returned nothing:\n%s", len(failures), strings.Join(failures, "\n"))
			return
		}
		time.Sleep(2 * time.Second)
	}
}
