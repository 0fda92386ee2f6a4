package policy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestMustHave: a team namespace must carry a default-deny NetworkPolicy, a
// ResourceQuota and a RoleBinding. Informed, the policy names what is
// missing; enforced, it creates them; an object deleted or changed by hand
// is put back at once (the policy is evaluated on changes only), and the
// history and the metrics follow each verdict.
func TestMustHave(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "mh-team-a", map[string]string{"tier": "team"})
	e.namespace(t, "mh-team-b", map[string]string{"tier": "team"})
	e.namespace(t, "mh-other", map[string]string{"tier": "team"})

	p := newPolicy("baseline", fleetv1.RemediationInform,
		tmpl(t, fleetv1.MustHave, `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec: {podSelector: {}, policyTypes: [Ingress, Egress]}`),
		tmpl(t, fleetv1.MustHave, `apiVersion: v1
kind: ResourceQuota
metadata: {name: quota}
spec: {hard: {pods: "10", requests.cpu: 2000m}}`),
		tmpl(t, fleetv1.MustHave, `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: team-view}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: Group, name: team, apiGroup: rbac.authorization.k8s.io}]`))
	p.Spec.NamespaceSelector = &fleetv1.PolicyNamespaceSelector{Include: []string{"mh-team-*", "mh-other"}, Exclude: []string{"mh-oth?r"}}
	// team-b has the quota already, with more pods than the policy wants.
	e.create(t, rqGVR, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: quota, namespace: mh-team-b}\nspec: {hard: {pods: '20', requests.cpu: '2'}}")
	e.source.Set(p)

	st := e.waitStatus(t, "baseline", is(fleetv1.NonCompliant, 1,
		message(0, "networkpolicies [deny-all] not found in namespaces: mh-team-a, mh-team-b"),
		message(1, "resourcequotas [quota] not found in namespace mh-team-a", "resourcequotas [quota] found but not as specified in namespace mh-team-b"),
		message(2, "rolebindings [team-view] not found in namespaces: mh-team-a, mh-team-b")))
	quota := st.Templates[1].RelatedObjects
	if len(quota) != 2 || quota[1].Namespace != "mh-team-b" || quota[1].Diff != `spec.hard.pods: want "10", found "20"` {
		t.Errorf("the quota's related objects: %s", dump(quota))
	}
	if len(st.History) != 1 || st.History[0].Compliant != fleetv1.NonCompliant {
		t.Errorf("history: %s", dump(st.History))
	}
	if _, err := e.get(npGVR, "mh-team-a", "deny-all"); err == nil {
		t.Error("an inform policy created a NetworkPolicy")
	}

	p.Spec.RemediationAction = fleetv1.RemediationEnforce
	e.source.Set(p)
	e.waitStatus(t, "baseline", is(fleetv1.Compliant, 2))
	for _, ns := range []string{"mh-team-a", "mh-team-b"} {
		np, err := e.get(npGVR, ns, "deny-all")
		if err != nil {
			t.Fatalf("enforce did not create the NetworkPolicy in %s: %v", ns, err)
		}
		if got := np.GetAnnotations()[template.AnnotationCreatedBy]; got != "cluster1/policies.baseline" {
			t.Errorf("NetworkPolicy in %s: created-by %q", ns, got)
		}
		rb, err := e.get(rbGVR, ns, "team-view")
		if err != nil {
			t.Fatalf("enforce did not create the RoleBinding in %s: %v", ns, err)
		}
		if subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects"); len(subjects) != 1 {
			t.Errorf("RoleBinding subjects: %v", subjects)
		}
	}
	if _, err := e.get(npGVR, "mh-other", "deny-all"); err == nil {
		t.Error("the excluded namespace got a NetworkPolicy")
	}
	// The existing quota was corrected, not replaced.
	q, _ := e.get(rqGVR, "mh-team-b", "quota")
	if pods, _, _ := unstructured.NestedString(q.Object, "spec", "hard", "pods"); pods != "10" || q.GetAnnotations()[template.AnnotationCreatedBy] != "" {
		t.Errorf("quota in mh-team-b: pods %q, annotations %v", pods, q.GetAnnotations())
	}

	// Deleted by hand: created again, by the watch (the policy has no
	// periodic evaluation).
	np, _ := e.get(npGVR, "mh-team-a", "deny-all")
	if err := e.dyn.Resource(npGVR).Namespace("mh-team-a").Delete(context.Background(), "deny-all", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, within, func() error {
		again, err := e.get(npGVR, "mh-team-a", "deny-all")
		if err != nil {
			return err
		}
		if again.GetUID() == np.GetUID() {
			return errors.New("still the deleted one")
		}
		return nil
	}, "the deleted NetworkPolicy created again")

	// A subject added by someone else stays; the policy's is put back.
	rb, _ := e.get(rbGVR, "mh-team-b", "team-view")
	_ = unstructured.SetNestedSlice(rb.Object, []any{map[string]any{"kind": "User", "name": "auditor", "apiGroup": "rbac.authorization.k8s.io"}}, "subjects")
	if _, err := e.dyn.Resource(rbGVR).Namespace("mh-team-b").Update(context.Background(), rb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, within, func() error {
		rb, err := e.get(rbGVR, "mh-team-b", "team-view")
		if err != nil {
			return err
		}
		subjects, _, _ := unstructured.NestedSlice(rb.Object, "subjects")
		var names []string
		for _, s := range subjects {
			names = append(names, s.(map[string]any)["name"].(string))
		}
		if !slices.Contains(names, "team") || !slices.Contains(names, "auditor") {
			return fmt.Errorf("subjects %v", names)
		}
		return nil
	}, "the RoleBinding's subject put back beside the other")

	st = e.waitStatus(t, "baseline", is(fleetv1.Compliant, 2, func(st *fleetv1.PolicyStatus) error {
		if len(st.History) != 2 || st.History[0].Compliant != fleetv1.Compliant || st.History[1].Compliant != fleetv1.NonCompliant {
			return fmt.Errorf("history %s", dump(st.History))
		}
		return nil
	}))
	for _, ro := range st.Templates[0].RelatedObjects {
		if !ro.CreatedByPolicy {
			t.Errorf("related object %s/%s not marked created by the policy", ro.Namespace, ro.Name)
		}
	}
	if v, tr := e.gauge(t, "baseline"); v != 1 || tr["NonCompliant"] != 1 || tr["Compliant"] != 1 {
		t.Errorf("compliant gauge %d, transitions %v", v, tr)
	}
}
