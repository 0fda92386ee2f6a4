package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestPolicyAlertLoop closes the policy loop through the hub's telemetry on
// three real clusters, with the shipped policy rule pack (its `for:`
// shortened) evaluated inside the hub: a policy's compliance series fires
// an alert for one cluster, and an AlertRemediation enforces another policy
// there only (a dry-run rule only records, maxClusters holds a second
// cluster), undone once the alert stayed resolved; a cluster that turns
// NonCompliant on a critical policy is tainted by an AlertTaint and leaves a
// placement, its work coming back once it complies, and a policy flipping
// faster than the hold moves nothing.
func TestPolicyAlertLoop(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "plrhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "plr", 3, testbed.ClusterOptions{Nodes: 1})
	ca := testbed.NewCA(t, "plr-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
		c.Alerting.EvaluationInterval = time.Second
		c.NoShippedRules = true
		c.Alerting.RuleFiles = []string{fastPolicyRules(t)}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "plr"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	names := []string{"plr-1", "plr-2", "plr-3"}
	f := &policyFleet{kube: kube, hubURL: hb.HTTPURL, dyns: map[string]*dynamic.DynamicClient{}}
	for i, c := range clusters {
		joinAgent(t, bin, hb.AgentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
		f.dyns[names[i]] = dynamic.NewForConfigOrDie(c.RESTConfig)
	}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	if err := kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "plr"}}); err != nil {
		t.Fatal(err)
	}
	// The policies' placement tolerates the non-compliance taint: a policy
	// must keep judging the cluster it has tainted, or that cluster could
	// never be seen to comply again.
	if err := kube.Create(ctx, &fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: "default"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"plr"},
			Tolerations: []fleetv1.Toleration{{Key: nonCompliantTaint, Operator: "Exists"}}}}); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, kube, "all", names)

	t.Run("alert remediation", func(t *testing.T) { testAlertRemediation(ctx, t, f) })
	t.Run("compliance moves work", func(t *testing.T) { testComplianceMovesWork(ctx, t, f) })
}

const nonCompliantTaint = "fleetpulse.io/non-compliant"

// policyFleet is the hub's control plane and the three clusters' apiservers.
type policyFleet struct {
	kube   client.Client
	hubURL string
	dyns   map[string]*dynamic.DynamicClient
}

// testAlertRemediation: the "detector" policy (high severity, inform) turns
// NonCompliant on plr-2 only, when a debug ConfigMap appears there; the
// shipped FleetpulsePolicyNonCompliant fires for plr-2, and the
// AlertRemediation enforces "lockdown" (NonCompliant everywhere in inform)
// on plr-2 only. A dry-run rule on the same alert only records; with
// maxClusters 1, the alert firing for plr-3 as well holds it. Once the
// ConfigMaps go and the alert has stayed resolved for undoAfter, lockdown
// is back to inform on plr-2.
func testAlertRemediation(ctx context.Context, t *testing.T, f *policyFleet) {
	fast := fleetv1.EvaluationInterval{Compliant: "5s", NonCompliant: "2s"}
	netpol := map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
		"metadata": map[string]any{"name": "lockdown", "namespace": "default"},
		"spec":     map[string]any{"podSelector": map[string]any{}, "policyTypes": []any{"Ingress", "Egress"}}}
	quota := map[string]any{"apiVersion": "v1", "kind": "ResourceQuota",
		"metadata": map[string]any{"name": "quarantine", "namespace": "default"},
		"spec":     map[string]any{"hard": map[string]any{"pods": "0"}}}
	for _, p := range []*fleetv1.Policy{
		{ObjectMeta: metav1.ObjectMeta{Name: "detector", Namespace: "default"}, Spec: fleetv1.PolicySpec{
			RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityHigh, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{polTemplate(fleetv1.MustNotHave, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "debug-endpoint", "namespace": "default"}})}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "lockdown", Namespace: "default"}, Spec: fleetv1.PolicySpec{
			RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityMedium, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{polTemplate(fleetv1.MustHave, netpol)}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "quarantine", Namespace: "default"}, Spec: fleetv1.PolicySpec{
			RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityMedium, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{polTemplate(fleetv1.MustHave, quota)}}},
	} {
		if err := f.kube.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.kube.Create(ctx, &fleetv1.PlacementBinding{ObjectMeta: metav1.ObjectMeta{Name: "remediation", Namespace: "default"},
		PlacementRef: fleetv1.BindingPlacementRef{Name: "all"},
		Subjects:     []fleetv1.PolicySubject{{Kind: "Policy", Name: "detector"}, {Kind: "Policy", Name: "lockdown"}, {Kind: "Policy", Name: "quarantine"}},
	}); err != nil {
		t.Fatal(err)
	}
	const undoAfter = 5 * time.Second
	for _, r := range []*fleetv1.AlertRemediation{
		{ObjectMeta: metav1.ObjectMeta{Name: "lockdown-debug"}, Spec: fleetv1.AlertRemediationSpec{
			AlertName: "FleetpulsePolicyNonCompliant", MatchLabels: map[string]string{"policy": "detector"},
			PolicyRef: fleetv1.PolicyRef{Namespace: "default", Name: "lockdown"}, EnforceAfter: metav1.Duration{Duration: 2 * time.Second},
			UndoAfter: &metav1.Duration{Duration: undoAfter}, MaxClusters: 1}},
		{ObjectMeta: metav1.ObjectMeta{Name: "quarantine-debug"}, Spec: fleetv1.AlertRemediationSpec{
			AlertName: "FleetpulsePolicyNonCompliant", MatchLabels: map[string]string{"policy": "detector"},
			PolicyRef: fleetv1.PolicyRef{Namespace: "default", Name: "quarantine"}, DryRun: true}},
	} {
		if err := f.kube.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	names := []string{"plr-1", "plr-2", "plr-3"}
	for _, n := range names {
		f.waitReplica(ctx, t, n, "detector", fleetv1.RemediationInform, fleetv1.Compliant)
		f.waitReplica(ctx, t, n, "lockdown", fleetv1.RemediationInform, fleetv1.NonCompliant)
		f.waitReplica(ctx, t, n, "quarantine", fleetv1.RemediationInform, fleetv1.NonCompliant)
	}

	// A debug endpoint appears on plr-2: the detector's series turns 0
	// there, and the rule fires for plr-2 alone.
	debug := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "debug-endpoint", "namespace": "default"}, "data": map[string]any{"port": "6060"}}}
	if _, err := f.dyns["plr-2"].Resource(polCMs).Namespace("default").Create(ctx, debug, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	firedAt := waitFiring(t, f.hubURL, "FleetpulsePolicyNonCompliant", "plr-2")
	f.waitReplica(ctx, t, "plr-2", "lockdown", fleetv1.RemediationEnforce, fleetv1.Compliant)
	t.Logf("FleetpulsePolicyNonCompliant fired for plr-2 at %s; lockdown enforced and Compliant there %s later (enforceAfter 2s)",
		firedAt.Format(time.TimeOnly), time.Since(firedAt).Round(10*time.Millisecond))
	if _, err := f.dyns["plr-2"].Resource(polNetpols).Namespace("default").Get(ctx, "lockdown", metav1.GetOptions{}); err != nil {
		t.Fatalf("lockdown enforced on plr-2 but its NetworkPolicy is not there: %v", err)
	}
	pollUntil(ctx, t, "lockdown-debug's status: plr-2 Enforcing, naming the alert's labels and value", func() (bool, string) {
		r := f.remediation("lockdown-debug")
		if r.Status.EnforcingClusters != 1 || len(r.Status.Clusters) != 1 {
			return false, remediationStatus(r)
		}
		c := r.Status.Clusters[0]
		return c.Cluster == "plr-2" && c.State == fleetv1.RemediationStateEnforcing && c.AlertLabels["policy"] == "detector" &&
			c.AlertLabels["alertname"] == "FleetpulsePolicyNonCompliant" && c.Value == "0", remediationStatus(r)
	})
	f.waitEvent(ctx, t, "lockdown-debug", "Enforcing", "enforcing default/lockdown on plr-2: alert FleetpulsePolicyNonCompliant", "policy:detector", "= 0")
	pollUntil(ctx, t, "quarantine-debug's status: plr-2 WouldEnforce (dry run)", func() (bool, string) {
		r := f.remediation("quarantine-debug")
		if r.Status.EnforcingClusters != 0 || len(r.Status.Clusters) != 1 {
			return false, remediationStatus(r)
		}
		c := r.Status.Clusters[0]
		return c.Cluster == "plr-2" && c.State == fleetv1.RemediationStateWouldEnforce && c.AlertLabels["policy"] == "detector" &&
			c.Value == "0" && strings.Contains(c.Message, "dry run"), remediationStatus(r)
	})
	f.waitEvent(ctx, t, "quarantine-debug", "WouldEnforce", "dry run: would enforce default/quarantine on plr-2: alert FleetpulsePolicyNonCompliant", "= 0")

	// The other clusters are untouched: lockdown stays inform and
	// NonCompliant, its NetworkPolicy absent. The dry run changed nothing
	// anywhere, plr-2 included.
	for _, n := range names {
		if n != "plr-2" {
			f.assertReplica(ctx, t, n, "lockdown", fleetv1.RemediationInform, fleetv1.NonCompliant)
			if _, err := f.dyns[n].Resource(polNetpols).Namespace("default").Get(ctx, "lockdown", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("lockdown's NetworkPolicy on %s, where no alert fired: %v", n, err)
			}
		}
		f.assertReplica(ctx, t, n, "quarantine", fleetv1.RemediationInform, fleetv1.NonCompliant)
		if _, err := f.dyns[n].Resource(polQuotas).Namespace("default").Get(ctx, "quarantine", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the dry-run rule's ResourceQuota on %s: %v", n, err)
		}
	}

	// maxClusters 1: the alert firing for plr-3 too holds it, unenforced.
	if _, err := f.dyns["plr-3"].Resource(polCMs).Namespace("default").Create(ctx, debug, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFiring(t, f.hubURL, "FleetpulsePolicyNonCompliant", "plr-3")
	pollUntil(ctx, t, "lockdown-debug holding plr-3 (maxClusters 1)", func() (bool, string) {
		r := f.remediation("lockdown-debug")
		for _, c := range r.Status.Clusters {
			if c.Cluster == "plr-3" {
				return c.State == fleetv1.RemediationStateHeld && strings.Contains(c.Message, "maxClusters 1") && r.Status.EnforcingClusters == 1,
					remediationStatus(r)
			}
		}
		return false, remediationStatus(r)
	})
	f.assertReplica(ctx, t, "plr-3", "lockdown", fleetv1.RemediationInform, fleetv1.NonCompliant)

	// The debug endpoints go: once the alert has stayed resolved for
	// undoAfter, lockdown is back to inform on plr-2. Undoing lowers the
	// remediation and deletes nothing: the NetworkPolicy stays, so the
	// replica stays Compliant.
	for _, n := range []string{"plr-3", "plr-2"} {
		if err := f.dyns[n].Resource(polCMs).Namespace("default").Delete(ctx, "debug-endpoint", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cleared := time.Now()
	f.waitReplica(ctx, t, "plr-2", "lockdown", fleetv1.RemediationInform, fleetv1.Compliant)
	// The hold counts from the evaluation that saw the alert resolved, as
	// the status records it in whole seconds.
	if held := time.Since(cleared); held < undoAfter-time.Second {
		t.Errorf("lockdown back to inform %s after the debug endpoints went, want after the %s hold", held, undoAfter)
	}
	t.Logf("lockdown back to inform on plr-2 %s after the debug endpoints went (undoAfter %s)", time.Since(cleared).Round(10*time.Millisecond), undoAfter)
	f.waitEvent(ctx, t, "lockdown-debug", "Undone", "default/lockdown back to its own remediation on plr-2: alert FleetpulsePolicyNonCompliant resolved for")
	pollUntil(ctx, t, "both rules' status empty", func() (bool, string) {
		a, b := f.remediation("lockdown-debug"), f.remediation("quarantine-debug")
		return len(a.Status.Clusters) == 0 && a.Status.EnforcingClusters == 0 && len(b.Status.Clusters) == 0, remediationStatus(a) + " " + remediationStatus(b)
	})

	// Later subtests bring critical policies: these rules must not act on them.
	for _, r := range []string{"lockdown-debug", "quarantine-debug"} {
		if err := f.kube.Delete(ctx, &fleetv1.AlertRemediation{ObjectMeta: metav1.ObjectMeta{Name: r}}); err != nil {
			t.Fatal(err)
		}
	}
}

// testComplianceMovesWork: a critical "required" policy (mustnothave a
// forbidden ConfigMap) judges every cluster; the shipped
// FleetpulseClusterNonCompliant and an AlertTaint taint a cluster that breaks
// it, so the placement "app" (every cluster, no toleration) drops it and its
// ManifestWork goes; once it complies again and the hold has passed, the
// work is back. Then, with a 15s hold, the policy flipping every 4s on
// another cluster moves nothing.
func testComplianceMovesWork(ctx context.Context, t *testing.T, f *policyFleet) {
	names := []string{"plr-1", "plr-2", "plr-3"}
	required := &fleetv1.Policy{ObjectMeta: metav1.ObjectMeta{Name: "required", Namespace: "default"}, Spec: fleetv1.PolicySpec{
		RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityCritical,
		EvaluationInterval: fleetv1.EvaluationInterval{Compliant: "5s", NonCompliant: "2s"},
		ObjectTemplates: []fleetv1.ObjectTemplate{polTemplate(fleetv1.MustNotHave, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "forbidden", "namespace": "default"}})}}}
	if err := f.kube.Create(ctx, required); err != nil {
		t.Fatal(err)
	}
	if err := f.kube.Create(ctx, &fleetv1.PlacementBinding{ObjectMeta: metav1.ObjectMeta{Name: "required", Namespace: "default"},
		PlacementRef: fleetv1.BindingPlacementRef{Name: "all"}, Subjects: []fleetv1.PolicySubject{{Kind: "Policy", Name: "required"}}}); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		f.waitReplica(ctx, t, n, "required", fleetv1.RemediationInform, fleetv1.Compliant)
	}
	if err := f.kube.Create(ctx, &fleetv1.AlertTaint{ObjectMeta: metav1.ObjectMeta{Name: "non-compliant"},
		Spec: fleetv1.AlertTaintSpec{AlertName: "FleetpulseClusterNonCompliant",
			Taint:        fleetv1.Taint{Key: nonCompliantTaint, Effect: fleetv1.TaintNoSelect},
			UntaintAfter: metav1.Duration{Duration: 5 * time.Second}}}); err != nil {
		t.Fatal(err)
	}
	if err := f.kube.Create(ctx, &fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"plr"}}}); err != nil {
		t.Fatal(err)
	}
	cm, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "app", "namespace": "default"},
		"data": map[string]any{"k": "v"}})
	if err := f.kube.Create(ctx, &fleetv1.ManifestWorkSet{ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "default"},
		Spec: fleetv1.ManifestWorkSetSpec{
			ManifestWorkTemplate: fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{{RawExtension: runtime.RawExtension{Raw: cm}}}}},
			PlacementRefs:        []fleetv1.PlacementRef{{Name: "app"}},
		}}); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, f.kube, "app", names)
	for _, n := range names {
		waitApplied(t, f.kube, n, "app")
	}

	// plr-3 breaks the required policy: it leaves the decision, its work
	// goes, the others keep theirs.
	forbidden := func() *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "forbidden", "namespace": "default"}}}
	}
	if _, err := f.dyns["plr-3"].Resource(polCMs).Namespace("default").Create(ctx, forbidden(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	firedAt := waitFiring(t, f.hubURL, "FleetpulseClusterNonCompliant", "plr-3")
	waitDecision(t, f.kube, "app", []string{"plr-1", "plr-2"})
	t.Logf("FleetpulseClusterNonCompliant fired for plr-3 at %s; plr-3 out of the decision %s later",
		firedAt.Format(time.TimeOnly), time.Since(firedAt).Round(10*time.Millisecond))
	waitGone(t, f.kube, "plr-3", "app")
	// Tolerating the taint, the policies' placement keeps judging plr-3.
	if got := decided(t, f.kube, "all"); !slices.Equal(got, names) {
		t.Errorf("the policies' placement decided %v while plr-3 was tainted, want %v", got, names)
	}
	f.assertReplica(ctx, t, "plr-3", "required", fleetv1.RemediationInform, fleetv1.NonCompliant)
	f.waitEvent(ctx, t, "non-compliant", "Tainted", "tainted plr-3 ("+nonCompliantTaint+"): alert FleetpulseClusterNonCompliant")

	// plr-3 complies again: after the 5s hold the taint goes and the work
	// is back.
	if err := f.dyns["plr-3"].Resource(polCMs).Namespace("default").Delete(ctx, "forbidden", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cleared := time.Now()
	waitNoTaint(t, f.kube, "plr-3", nonCompliantTaint)
	if held := time.Since(cleared); held < 4*time.Second {
		t.Errorf("taint removed %s after plr-3 complied, want after the 5s hold (less the status' whole-second rounding)", held)
	}
	waitDecision(t, f.kube, "app", names)
	waitApplied(t, f.kube, "plr-3", "app")
	t.Logf("plr-3 complied again; its work Applied there %s later (untaintAfter 5s)", time.Since(cleared).Round(10*time.Millisecond))

	// With a 15s hold, plr-1 flipping between NonCompliant and Compliant
	// every 4s fires the alert each time and moves nothing.
	if err := f.kube.Patch(ctx, &fleetv1.AlertTaint{ObjectMeta: metav1.ObjectMeta{Name: "non-compliant"}},
		client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"taintAfter":"15s"}}`))); err != nil {
		t.Fatal(err)
	}
	cms := f.dyns["plr-1"].Resource(polCMs).Namespace("default")
	defer func() { _ = cms.Delete(context.Background(), "forbidden", metav1.DeleteOptions{}) }()
	// Each firing spell is a Firing entry of its own start: the alert must
	// resolve between spells for the hold to count again.
	spells := map[time.Time]bool{}
	for flip := 0; flip < 8; flip++ {
		if flip%2 == 0 {
			if _, err := cms.Create(ctx, forbidden(), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		} else if err := cms.Delete(ctx, "forbidden", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		for end := time.Now().Add(4 * time.Second); time.Now().Before(end); {
			if got := decided(t, f.kube, "app"); !slices.Equal(got, names) {
				t.Fatalf("a policy flipping every 4s moved the placement: %v → %v", names, got)
			}
			mc := &fleetv1.ManagedCluster{}
			_ = f.kube.Get(ctx, client.ObjectKey{Name: "plr-1"}, mc)
			for _, tn := range mc.Spec.Taints {
				if tn.Key == nonCompliantTaint {
					t.Fatalf("a policy flipping every 4s tainted plr-1: %+v", mc.Spec.Taints)
				}
			}
			at := &fleetv1.AlertTaint{}
			_ = f.kube.Get(ctx, client.ObjectKey{Name: "non-compliant"}, at)
			for _, c := range at.Status.Clusters {
				if c.Cluster == "plr-1" && c.State == "Firing" {
					spells[c.Since.Time] = true
				}
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The flips reached the actuator: the alert fired in separate spells,
	// and the hold alone kept the taint off.
	if len(spells) < 2 {
		t.Errorf("the AlertTaint saw plr-1 firing in %d separate spells over 4 non-compliant ones, want at least 2: the flips did not reach it", len(spells))
	}
	t.Logf("plr-1 flipped 4 times in 32s; the AlertTaint saw %d separate firing spells, each shorter than the 15s hold, and tainted nothing", len(spells))
}

// fastPolicyRules writes the shipped policy rule pack with every `for:`
// shortened to 2s, so alerts fire within seconds of the series.
func fastPolicyRules(t *testing.T) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "rules", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^(\s+for:) \S+$`)
	if n := len(re.FindAll(b, -1)); n < 2 {
		t.Fatalf("rules/policy.yaml: %d `for:` lines, want the policy and cluster non-compliance alerts' at least", n)
	}
	path := filepath.Join(t.TempDir(), "policy-fast.yaml")
	if err := os.WriteFile(path, re.ReplaceAll(b, []byte("$1 2s")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (f *policyFleet) replica(ctx context.Context, cluster, policy string) *fleetv1.Policy {
	p := &fleetv1.Policy{}
	_ = f.kube.Get(ctx, client.ObjectKey{Namespace: cluster, Name: "default." + policy}, p)
	return p
}

// waitReplica waits for the policy's replica on the cluster to carry the
// remediation and the verdict for its current generation.
func (f *policyFleet) waitReplica(ctx context.Context, t *testing.T, cluster, policy string, ra fleetv1.RemediationAction, want fleetv1.ComplianceState) {
	t.Helper()
	pollUntil(ctx, t, fmt.Sprintf("%s's %s replica %s and %s", cluster, policy, ra, want), func() (bool, string) {
		r := f.replica(ctx, cluster, policy)
		return r.Spec.RemediationAction == ra && r.Status.Compliant == want && r.Status.ObservedGeneration == r.Generation,
			fmt.Sprintf("%s %s", r.Spec.RemediationAction, polStatus(r))
	})
}

func (f *policyFleet) assertReplica(ctx context.Context, t *testing.T, cluster, policy string, ra fleetv1.RemediationAction, want fleetv1.ComplianceState) {
	t.Helper()
	if r := f.replica(ctx, cluster, policy); r.Spec.RemediationAction != ra || r.Status.Compliant != want {
		t.Errorf("%s's %s replica: %s %s, want %s %s", cluster, policy, r.Spec.RemediationAction, r.Status.Compliant, ra, want)
	}
}

func (f *policyFleet) remediation(name string) *fleetv1.AlertRemediation {
	r := &fleetv1.AlertRemediation{}
	_ = f.kube.Get(context.Background(), client.ObjectKey{Name: name}, r)
	return r
}

func remediationStatus(r *fleetv1.AlertRemediation) string {
	b, _ := json.Marshal(r.Status)
	return string(b)
}

// waitEvent waits for an Event of the reason regarding the named
// (cluster-scoped) object whose note holds every part.
func (f *policyFleet) waitEvent(ctx context.Context, t *testing.T, name, reason string, parts ...string) {
	t.Helper()
	pollUntil(ctx, t, fmt.Sprintf("a %s event on %s with %q", reason, name, parts), func() (bool, string) {
		var list eventsv1.EventList
		if err := f.kube.List(ctx, &list); err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name != name {
				continue
			}
			seen = append(seen, e.Reason+": "+e.Note)
			if e.Reason != reason {
				continue
			}
			all := true
			for _, p := range parts {
				all = all && strings.Contains(e.Note, p)
			}
			if all {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%q", seen)
	})
}
