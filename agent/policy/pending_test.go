package policy_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/fleetpulse/fleetpulse/agent/policy"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// TestBadTemplatesArePending: templates that cannot be evaluated (unknown
// kind, invalid object, no namespace, a bad glob, a kind the agent may not
// list) are Pending, each with its reason, and hold back neither the
// policy's good template nor a good policy beside them, which go on being
// evaluated as objects change.
func TestBadTemplatesArePending(t *testing.T) {
	t.Parallel()
	// The agent runs as a user that may read and write ConfigMaps and
	// read namespaces, and nothing else.
	cp := controlplane.Start(t)
	kube := kubernetes.NewForConfigOrDie(cp.RESTConfig)
	ctx := context.Background()
	_, err := kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "pending-agent"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}},
			{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}},
		}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "pending-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "pending-agent"},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "pending-agent"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, func(c *policy.Config) {
		rc := rest.CopyConfig(c.RESTConfig)
		rc.Impersonate = rest.ImpersonationConfig{UserName: "pending-agent"}
		c.RESTConfig = rc
	})
	e.namespace(t, "pending", nil)

	good := tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wanted, namespace: pending}")
	mixed := newPolicy("mixed", fleetv1.RemediationInform,
		good,
		tmpl(t, fleetv1.MustHave, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: pending}"),
		tmpl(t, fleetv1.MustHave, "apiVersion: v1\nmetadata: {name: no-kind}"),
		tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: nowhere}"),
		tmpl(t, fleetv1.MustNotHave, "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: pending}"),
	)
	globbed := newPolicy("globbed", fleetv1.RemediationInform, tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}"))
	globbed.Spec.NamespaceSelector = &fleetv1.PolicyNamespaceSelector{Include: []string{"pend[ing"}}
	beside := newPolicy("beside", fleetv1.RemediationInform, good)
	e.source.Set(mixed, globbed, beside)

	e.waitStatus(t, "mixed", is(fleetv1.NonCompliant, 1, func(st *fleetv1.PolicyStatus) error {
		want := []string{
			"configmaps [wanted] not found in namespace pending",
			"Widget pending/w: kind Widget of apiVersion example.com/v1 is not served by the cluster",
			"invalid object template: objectDefinition names no kind",
			"ConfigMap nowhere: ConfigMap is namespaced, but the template names no namespace and the policy has no namespaceSelector",
			`Secret pending/token: list secrets: secrets is forbidden: User "pending-agent" cannot list resource "secrets" in API group "" at the cluster scope`,
		}
		var got []string
		for i, tm := range st.Templates {
			if tm.Index != int32(i) {
				return fmt.Errorf("template %d has index %d", i, tm.Index)
			}
			if i > 0 && tm.Compliant != fleetv1.Pending {
				return fmt.Errorf("template %d is %s", i, tm.Compliant)
			}
			got = append(got, tm.Message)
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("messages %q", got)
		}
		return nil
	}))
	e.waitStatus(t, "globbed", is(fleetv1.Pending, 1, message(0, `namespaceSelector: include pattern "pend[ing": syntax error in pattern`)))
	e.waitStatus(t, "beside", is(fleetv1.NonCompliant, 1))

	// Both go on being evaluated: the wanted object appears.
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wanted, namespace: pending}")
	e.waitStatus(t, "beside", is(fleetv1.Compliant, 1))
	e.waitStatus(t, "mixed", is(fleetv1.Pending, 1, message(0, "configmaps [wanted] found as specified in namespace pending")))
	if v, _ := e.gauge(t, "mixed"); v != -1 {
		t.Errorf("gauge of a pending policy: %d", v)
	}
}

// TestWatchesFollowTheTemplates: a resource is watched while a template
// reads it, and no longer once none does.
func TestWatchesFollowTheTemplates(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "watches", nil)
	cm := tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: watches}")
	rq := tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: q}")
	p := newPolicy("watching", fleetv1.RemediationInform, cm, rq)
	p.Spec.NamespaceSelector = &fleetv1.PolicyNamespaceSelector{Include: []string{"watches"}}
	e.source.Set(p, newPolicy("also-cm", fleetv1.RemediationInform, cm))
	watched := func(want ...string) func() error {
		return func() error {
			if got := e.engine.Watched(); !slices.Equal(got, want) {
				return fmt.Errorf("watching %v, want %v", got, want)
			}
			return nil
		}
	}
	testutil.Eventually(t, within, watched("configmaps", "namespaces", "resourcequotas"))
	p.Spec.ObjectTemplates = []fleetv1.ObjectTemplate{cm}
	e.source.Set(p)
	testutil.Eventually(t, within, watched("configmaps"))
	e.source.Remove("cluster1", "policies.watching")
	testutil.Consistently(t, 0, watched("configmaps"))
	e.source.Remove("cluster1", "policies.also-cm")
	testutil.Eventually(t, within, watched())
}
