package e2e

import (
	"context"
	"encoding/json"

	"net/http"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestTelemetryMovesWork is the loop end to end: a Placement picks 2 of 3
// labelled clusters, preferring the lowest CPU requested (PromQL over the
// agents' inventory); a ManifestWorkSet puts work on them; nodes going
// NotReady in a chosen cluster fire the shipped alert, an AlertTaint taints
// the cluster, and the work moves to the third cluster. It measures the time
// from the alert firing to the work Applied on the new cluster, checks that
// clearing the signal removes the taint after the hold time, and that a
// signal flipping every few seconds moves nothing.
func TestTelemetryMovesWork(t *testing.T) {
	t.Parallel()
	const evalInterval = time.Second
	cp := testbed.StartClusters(t, "movehub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "move", 3, testbed.ClusterOptions{Nodes: 2})
	ca := testbed.NewCA(t, "move-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
		c.Registration.InventoryInterval = time.Second
		c.Alerting.EvaluationInterval = evalInterval
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	ctx := context.Background()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "move"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	names := []string{"move-1", "move-2", "move-3"}
	for i, c := range clusters {
		joinAgent(t, bin, agentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
	}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
		if err := kube.Patch(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: n}},
			client.RawPatch("application/merge-patch+json", []byte(`{"metadata":{"labels":{"tier":"gold"}}}`))); err != nil {
			t.Fatal(err)
		}
	}
	if err := kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "move"}}); err != nil {
		t.Fatal(err)
	}
	// move-1 is busy: its pods request 4 of its 16 allocatable cores.
	busy := nginxDeployment("busy", 2)
	busy.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}
	if _, err := kubernetes.NewForConfigOrDie(clusters[0].RESTConfig).AppsV1().Deployments("default").Create(ctx, busy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prom := promAPI(t, httpURL)
	waitForValue(t, prom, `count(cluster:k8s_cpu_requests:ratio{cluster=~"move-.*"})`, 3)
	waitForValue(t, prom, `cluster:k8s_cpu_requests:ratio{cluster="move-1"}`, 0.25)

	placement := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Name: "gold", Namespace: "default"},
		Spec: fleetv1.PlacementSpec{
			ClusterSets:      []string{"move"},
			NumberOfClusters: ptrTo(int32(2)),
			Predicates:       []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tier": "gold"}}}},
			PrioritizerPolicy: fleetv1.PrioritizerPolicy{Mode: "Exact", Configurations: []fleetv1.PrioritizerConfig{{
				ScoreCoordinate: fleetv1.ScoreCoordinate{Type: "PromQL", PromQL: &fleetv1.PromQLScore{Query: "cluster:k8s_cpu_requests:ratio", Ascending: true}},
				Weight:          1,
			}}},
			Rescheduling: fleetv1.Rescheduling{Hysteresis: 10, MinInterval: metav1.Duration{Duration: 5 * time.Second}},
		},
	}
	if err := kube.Create(ctx, placement); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, kube, "gold", []string{"move-2", "move-3"})

	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "moved", "namespace": "default"}, "data": map[string]any{"k": "v"}}
	raw, _ := json.Marshal(cm)
	set := &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: fleetv1.ManifestWorkSetSpec{
			ManifestWorkTemplate: fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{{RawExtension: runtime.RawExtension{Raw: raw}}}}},
			PlacementRefs:        []fleetv1.PlacementRef{{Name: "gold"}},
		},
	}
	if err := kube.Create(ctx, set); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, kube, "move-2", "app")
	waitApplied(t, kube, "move-3", "app")

	alertTaint := &fleetv1.AlertTaint{
		ObjectMeta: metav1.ObjectMeta{Name: "nodes-not-ready"},
		Spec: fleetv1.AlertTaintSpec{AlertName: "FleetpulseNodesNotReady",
			Taint:        fleetv1.Taint{Key: "fleetpulse.io/nodes-not-ready", Effect: fleetv1.TaintNoSelect},
			UntaintAfter: metav1.Duration{Duration: 5 * time.Second}},
	}
	if err := kube.Create(ctx, alertTaint); err != nil {
		t.Fatal(err)
	}

	// move-2's nodes go NotReady (a node whose kubelet is lost).
	move2 := kubernetes.NewForConfigOrDie(clusters[1].RESTConfig)
	lost := lostNode("move-2-lost")
	if _, err := move2.CoreV1().Nodes().Create(ctx, lost, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	firedAt := waitFiring(t, httpURL, "FleetpulseNodesNotReady", "move-2")
	appliedAt := waitApplied(t, kube, "move-1", "app")
	took := appliedAt.Sub(firedAt)
	t.Logf("alert fired at %s; work Applied on move-1 %s later (goal ≤ one evaluation interval %s + 2s)", firedAt.Format(time.TimeOnly), took.Round(10*time.Millisecond), evalInterval)
	if took > evalInterval+2*time.Second {
		t.Errorf("alert firing → work Applied on the new cluster took %s, want ≤ %s", took, evalInterval+2*time.Second)
	}
	waitDecision(t, kube, "gold", []string{"move-1", "move-3"})
	waitGone(t, kube, "move-2", "app")

	// Clearing the signal removes the taint after the hold time.
	if err := move2.CoreV1().Nodes().Delete(ctx, lost.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	waitNoTaint(t, kube, "move-2", "fleetpulse.io/nodes-not-ready")
	// The hold counts from the resolve as the AlertTaint's status records
	// it, in whole seconds (metav1.Time): up to a second before the
	// evaluation that saw the alert resolved.
	if held := time.Since(cleared); held < 4*time.Second {
		t.Errorf("taint removed %s after the signal cleared, want after the 5s hold (less the status' whole-second rounding)", held)
	}
	// Untainted, move-2 has the best score again, by more than the
	// hysteresis, and the last move was over minInterval ago: the decision
	// goes back. (Reading it before it has would race the placement.)
	waitDecision(t, kube, "gold", []string{"move-2", "move-3"})

	// A signal flipping every 2 seconds, against a 15s hold, moves nothing.
	if err := kube.Patch(ctx, &fleetv1.AlertTaint{ObjectMeta: metav1.ObjectMeta{Name: "nodes-not-ready"}},
		client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"taintAfter":"15s"}}`))); err != nil {
		t.Fatal(err)
	}
	before := decided(t, kube, "gold")
	move3 := kubernetes.NewForConfigOrDie(clusters[2].RESTConfig)
	end := time.Now().Add(20 * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		if i%2 == 0 {
			_, _ = move3.CoreV1().Nodes().Create(ctx, lostNode("move-3-flaky"), metav1.CreateOptions{})
		} else {
			_ = move3.CoreV1().Nodes().Delete(ctx, "move-3-flaky", metav1.DeleteOptions{})
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if got := decided(t, kube, "gold"); !slices.Equal(got, before) {
				t.Fatalf("a flapping signal moved the placement: %v → %v", before, got)
			}
			mc := &fleetv1.ManagedCluster{}
			_ = kube.Get(ctx, client.ObjectKey{Name: "move-3"}, mc)
			for _, tn := range mc.Spec.Taints {
				if tn.Key == "fleetpulse.io/nodes-not-ready" {
					t.Fatalf("a flapping signal tainted move-3: %+v", mc.Spec.Taints)
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	_ = move3.CoreV1().Nodes().Delete(ctx, "move-3-flaky", metav1.DeleteOptions{})
}

func ptrTo[T any](v T) *T { return &v }

func lostNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletStopped", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}}},
	}
}

// decided lists a placement's decided clusters, sorted.
func decided(t *testing.T, kube client.Client, placement string) []string {
	t.Helper()
	var list fleetv1.PlacementDecisionList
	if err := kube.List(context.Background(), &list, client.InNamespace("default"), client.MatchingLabels{fleetv1.LabelPlacement: placement}); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range list.Items {
		for _, c := range d.Status.Decisions {
			out = append(out, c.ClusterName)
		}
	}
	slices.Sort(out)
	return out
}

func waitDecision(t *testing.T, kube client.Client, placement string, want []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := decided(t, kube, placement)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("placement %s decided %v, want %v", placement, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitApplied waits for the work to be Applied in the cluster's namespace
// and returns when this poll first saw it.
func waitApplied(t *testing.T, kube client.Client, cluster, name string) time.Time {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		w := &fleetv1.ManifestWork{}
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: cluster, Name: name}, w)
		if err == nil && meta.IsStatusConditionTrue(w.Status.Conditions, fleetv1.WorkApplied) && w.Status.ObservedGeneration == w.Generation {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("work %s/%s not Applied within 60s: %+v (%v)", cluster, name, w.Status, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitGone(t *testing.T, kube client.Client, cluster, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := kube.Get(context.Background(), client.ObjectKey{Namespace: cluster, Name: name}, &fleetv1.ManifestWork{})
		if client.IgnoreNotFound(err) == nil && err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("work %s/%s still there 60s after its cluster left the decision", cluster, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitNoTaint(t *testing.T, kube client.Client, cluster, key string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		mc := &fleetv1.ManagedCluster{}
		_ = kube.Get(context.Background(), client.ObjectKey{Name: cluster}, mc)
		has := false
		for _, tn := range mc.Spec.Taints {
			has = has || tn.Key == key
		}
		if !has {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still tainted %s 60s after the signal cleared", cluster, key)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitFiring polls the hub's /api/v1/alerts until the alert fires for the
// cluster and returns when it became active.
func waitFiring(t *testing.T, hubURL, alert, cluster string) time.Time {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(hubURL + "/api/v1/alerts")
		if err == nil {
			var body struct {
				Data struct {
					Alerts []struct {
						Labels   map[string]string `json:"labels"`
						State    string            `json:"state"`
						ActiveAt time.Time         `json:"activeAt"`
					} `json:"alerts"`
				} `json:"data"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			for _, a := range body.Data.Alerts {
				if a.Labels["alertname"] == alert && a.Labels["cluster"] == cluster && a.State == "firing" {
					return a.ActiveAt
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("alert %s for %s did not fire within 90s", alert, cluster)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
