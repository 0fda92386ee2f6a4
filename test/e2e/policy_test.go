package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

var (
	polNetpols  = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "networkpolicies"}
	polQuotas   = schema.GroupVersionResource{Version: "v1", Resource: "resourcequotas"}
	polBindings = schema.GroupVersionResource{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"}
	polCMs      = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
)

// TestPolicyLifecycle runs policies through a real hub to real agents on
// three clusters: a musthave NetworkPolicy + ResourceQuota + RoleBinding
// policy in inform mode is NonCompliant naming the missing objects (on the
// replicas, the root and in `fleetpulse policy status`); enforce creates
// them; an object deleted by hand comes back within one evaluation;
// mustnothave deletes a forbidden object and mustonlyhave an extra field;
// each replica's history shows the transitions; the compliance series are
// queryable at the hub; a bad template gets a clear message while another
// policy is still evaluated.
func TestPolicyLifecycle(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "polhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "pol", 3, testbed.ClusterOptions{Nodes: 1})
	ca := testbed.NewCA(t, "pol-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "pol"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	names := []string{"pol-1", "pol-2", "pol-3"}
	dyns := map[string]*dynamic.DynamicClient{}
	for i, c := range clusters {
		joinAgent(t, bin, hb.AgentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
		dyns[names[i]] = dynamic.NewForConfigOrDie(c.RESTConfig)
	}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	if err := kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "pol"}}); err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, &fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Name: "all", Namespace: "default"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"pol"}}}); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, kube, "all", names)
	fast := fleetv1.EvaluationInterval{Compliant: "5s", NonCompliant: "2s"}
	baseline := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Name: "baseline", Namespace: "default",
			Annotations: map[string]string{fleetv1.AnnotationStandards: "NIST SP 800-53"}},
		Spec: fleetv1.PolicySpec{
			RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityHigh, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{
				polTemplate(fleetv1.MustHave, map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
					"metadata": map[string]any{"name": "default-deny", "namespace": "default"},
					"spec":     map[string]any{"podSelector": map[string]any{}, "policyTypes": []any{"Ingress"}}}),
				polTemplate(fleetv1.MustHave, map[string]any{"apiVersion": "v1", "kind": "ResourceQuota",
					"metadata": map[string]any{"name": "default", "namespace": "default"},
					"spec":     map[string]any{"hard": map[string]any{"pods": "100"}}}),
				polTemplate(fleetv1.MustHave, map[string]any{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
					"metadata": map[string]any{"name": "auditors", "namespace": "default"},
					"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
					"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "auditors"}}}),
			},
		},
	}
	if err := kube.Create(ctx, baseline); err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, &fleetv1.PlacementBinding{ObjectMeta: metav1.ObjectMeta{Name: "baseline", Namespace: "default"},
		PlacementRef: fleetv1.BindingPlacementRef{Name: "all"},
		Subjects:     []fleetv1.PolicySubject{{Kind: "Policy", Name: "baseline"}, {Kind: "Policy", Name: "hygiene"}, {Kind: "Policy", Name: "broken"}},
	}); err != nil {
		t.Fatal(err)
	}
	replica := func(cluster, name string) *fleetv1.Policy {
		p := &fleetv1.Policy{}
		_ = kube.Get(ctx, client.ObjectKey{Namespace: cluster, Name: "default." + name}, p)
		return p
	}
	root := func(name string) *fleetv1.Policy {
		p := &fleetv1.Policy{}
		_ = kube.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, p)
		return p
	}

	// Inform: NonCompliant everywhere, naming each missing object.
	for _, n := range names {
		pollUntil(ctx, t, n+"'s replica NonCompliant naming the three missing objects", func() (bool, string) {
			r := replica(n, "baseline")
			msg := templateMessages(r)
			return r.Status.Compliant == fleetv1.NonCompliant && strings.Contains(msg, "default-deny") &&
				strings.Contains(msg, "[default]") && strings.Contains(msg, "auditors") && strings.Count(msg, "not found") == 3, polStatus(r)
		})
	}
	pollUntil(ctx, t, "the root NonCompliant on 3 of 3 clusters", func() (bool, string) {
		r := root("baseline")
		return r.Status.Compliant == fleetv1.NonCompliant && r.Status.Summary != nil && r.Status.Summary.NonCompliant == 3, polStatus(r)
	})
	out, err := exec.Command(buildBinary(t, "fleetpulse"), "policy", "status", "--control-plane.kubeconfig="+cp.KubeconfigPath,
		"--policy=default/baseline").CombinedOutput()
	if err != nil || strings.Count(string(out), "NonCompliant") < 3 || !strings.Contains(string(out), "pol-2") {
		t.Fatalf("fleetpulse policy status: %v\n%s", err, out)
	}
	t.Logf("fleetpulse policy status --policy=default/baseline:\n%s", out)
	for _, n := range names {
		if _, err := dyns[n].Resource(polNetpols).Namespace("default").Get(ctx, "default-deny", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("inform created the NetworkPolicy on %s: %v", n, err)
		}
	}

	// Enforce: the objects are created and the policy turns Compliant.
	setRemediation(ctx, t, kube, "baseline", fleetv1.RemediationEnforce)
	for _, n := range names {
		pollUntil(ctx, t, n+" Compliant under enforce", func() (bool, string) {
			r := replica(n, "baseline")
			return r.Status.Compliant == fleetv1.Compliant && r.Status.ObservedGeneration == r.Generation, polStatus(r)
		})
		for gvr, name := range map[schema.GroupVersionResource]string{polNetpols: "default-deny", polQuotas: "default", polBindings: "auditors"} {
			if _, err := dyns[n].Resource(gvr).Namespace("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
				t.Errorf("%s %s on %s: %v", gvr.Resource, name, n, err)
			}
		}
	}
	pollUntil(ctx, t, "the root Compliant", func() (bool, string) {
		r := root("baseline")
		return r.Status.Compliant == fleetv1.Compliant, polStatus(r)
	})

	// A NetworkPolicy deleted by hand comes back within one evaluation.
	deleted := time.Now()
	if err := dyns["pol-2"].Resource(polNetpols).Namespace("default").Delete(ctx, "default-deny", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the deleted NetworkPolicy back on pol-2", func() (bool, string) {
		_, err := dyns["pol-2"].Resource(polNetpols).Namespace("default").Get(ctx, "default-deny", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
	if d := time.Since(deleted); d > 5*time.Second {
		t.Errorf("the NetworkPolicy came back after %s, more than one compliant interval (5s)", d)
	}
	t.Logf("a NetworkPolicy deleted by hand came back after %s", time.Since(deleted).Round(time.Millisecond))

	// History: NonCompliant, then Compliant, newest first.
	h := replica("pol-1", "baseline").Status.History
	var seen []fleetv1.ComplianceState
	for _, e := range h {
		seen = append(seen, e.Compliant)
	}
	if len(seen) < 2 || seen[0] != fleetv1.Compliant || !slices.Contains(seen, fleetv1.NonCompliant) {
		t.Errorf("pol-1's history %v: want Compliant after NonCompliant", seen)
	}

	// mustnothave deletes a forbidden object; mustonlyhave removes an extra field.
	for _, n := range names {
		for _, cm := range []map[string]any{
			{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "forbidden", "namespace": "default"}, "data": map[string]any{"k": "v"}},
			{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "exact", "namespace": "default"}, "data": map[string]any{"keep": "1", "extra": "x"}},
		} {
			if _, err := dyns[n].Resource(polCMs).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: cm}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	hygiene := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Name: "hygiene", Namespace: "default"},
		Spec: fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationEnforce, Severity: fleetv1.SeverityMedium, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{
				polTemplate(fleetv1.MustNotHave, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": "forbidden", "namespace": "default"}}),
				polTemplate(fleetv1.MustOnlyHave, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": "exact", "namespace": "default"}, "data": map[string]any{"keep": "1"}}),
			}},
	}
	if err := kube.Create(ctx, hygiene); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		pollUntil(ctx, t, n+": forbidden deleted, exact without its extra key", func() (bool, string) {
			_, errF := dyns[n].Resource(polCMs).Namespace("default").Get(ctx, "forbidden", metav1.GetOptions{})
			exact, errE := dyns[n].Resource(polCMs).Namespace("default").Get(ctx, "exact", metav1.GetOptions{})
			if errE != nil {
				return false, errE.Error()
			}
			data, _, _ := unstructured.NestedStringMap(exact.Object, "data")
			return apierrors.IsNotFound(errF) && len(data) == 1 && data["keep"] == "1", fmt.Sprintf("forbidden: %v, exact: %v", errF, data)
		})
		pollUntil(ctx, t, n+": hygiene Compliant", func() (bool, string) {
			r := replica(n, "hygiene")
			return r.Status.Compliant == fleetv1.Compliant, polStatus(r)
		})
	}

	// A bad template: a clear message, and the other policies still evaluated.
	broken := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Name: "broken", Namespace: "default"},
		Spec: fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationEnforce, EvaluationInterval: fast,
			ObjectTemplates: []fleetv1.ObjectTemplate{polTemplate(fleetv1.MustHave, map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
				"metadata": map[string]any{"name": "w", "namespace": "default"}})}},
	}
	if err := kube.Create(ctx, broken); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the broken policy Pending with the reason", func() (bool, string) {
		r := replica("pol-3", "broken")
		msg := templateMessages(r)
		return r.Status.Compliant == fleetv1.Pending && strings.Contains(msg, "Widget") && strings.Contains(msg, "not served"), polStatus(r)
	})
	if err := dyns["pol-3"].Resource(polQuotas).Namespace("default").Delete(ctx, "default", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "baseline still enforced on pol-3 beside the broken policy", func() (bool, string) {
		_, err := dyns["pol-3"].Resource(polQuotas).Namespace("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})

	// The compliance series, stamped with the cluster, at the hub.
	prom := promAPI(t, hb.HTTPURL)
	for _, n := range names {
		waitForValue(t, prom, fmt.Sprintf(`fleetpulse_policy_compliant{cluster=%q,policy="baseline",namespace="default",severity="high"}`, n), 1)
		waitForValue(t, prom, fmt.Sprintf(`fleetpulse_policy_compliant{cluster=%q,policy="broken"}`, n), -1)
	}
}

func polTemplate(ct fleetv1.ComplianceType, obj map[string]any) fleetv1.ObjectTemplate {
	raw, _ := json.Marshal(obj)
	return fleetv1.ObjectTemplate{ComplianceType: ct, ObjectDefinition: runtime.RawExtension{Raw: raw}}
}

func templateMessages(p *fleetv1.Policy) string {
	var b strings.Builder
	for _, ts := range p.Status.Templates {
		b.WriteString(ts.Message + "\n")
	}
	return b.String()
}

func polStatus(p *fleetv1.Policy) string {
	b, _ := json.Marshal(p.Status)
	return string(b)
}

func setRemediation(ctx context.Context, t *testing.T, kube client.Client, name string, ra fleetv1.RemediationAction) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"remediationAction":%q}}`, ra)
	if err := kube.Patch(ctx, &fleetv1.Policy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}},
		client.RawPatch("application/merge-patch+json", []byte(patch))); err != nil {
		t.Fatal(err)
	}
}
