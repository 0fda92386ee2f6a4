package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestTemplateMessage(t *testing.T) {
	nsScoped := &meta.RESTMapping{Resource: schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, Scope: meta.RESTScopeNamespace}
	obj := func(ns, name string, ok bool, reason string) result {
		return result{Result: template.Result{Namespace: ns, Name: name, Compliant: ok, Reason: reason}}
	}
	for _, tc := range []struct {
		name    string
		results []result
		want    string
	}{
		{"names grouped by reason and namespaces", []result{
			obj("a", "x", false, template.ReasonNotFound), obj("b", "x", false, template.ReasonNotFound),
			obj("a", "y", false, template.ReasonNotAsSpecified), obj("c", "y", true, template.ReasonFoundAsSpecified),
		}, "configmaps [x] not found in namespaces: a, b; configmaps [y] found but not as specified in namespace a"},
		{"compliant: everything", []result{
			obj("a", "x", true, ReasonCreated), obj("a", "y", true, template.ReasonFoundAsSpecified), obj("a", "w", true, ReasonCreated),
		}, "configmaps [w, x] created in namespace a; configmaps [y] found as specified in namespace a"},
		{"without a name", []result{obj("a", "", false, template.ReasonNotFound)}, "configmaps not found in namespace a"},
		{"a failed write", []result{{Result: template.Result{Namespace: "a", Name: "x", Reason: template.ReasonNotFound, Action: template.Create},
			err: fmt.Errorf("create: forbidden")}}, "configmaps [x] not found in namespace a; configmaps [x] in namespace a: could not create: forbidden"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &run{mapping: nsScoped, results: tc.results}
			assert.Equal(t, tc.want, templateMessage(r, r.verdict()))
		})
	}
}

func TestHistoryKeepsTheLastTenChanges(t *testing.T) {
	p := &fleetv1.Policy{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var st *fleetv1.PolicyStatus
	states := []fleetv1.ComplianceState{fleetv1.Pending, fleetv1.NonCompliant, fleetv1.NonCompliant}
	for i := range 12 {
		states = append(states, []fleetv1.ComplianceState{fleetv1.Compliant, fleetv1.NonCompliant}[i%2])
	}
	changes := 0
	for i, s := range states {
		var changed bool
		st, changed = buildStatus(p, st, []fleetv1.TemplateStatus{{Compliant: s, Message: fmt.Sprintf("step %d", i)}}, now.Add(time.Duration(i)*time.Minute))
		if changed {
			changes++
		}
	}
	assert.Equal(t, 14, changes, "the repeated NonCompliant is no change")
	require.Len(t, st.History, MaxHistory)
	assert.Equal(t, "NonCompliant; step 14", st.History[0].Message)
	assert.Equal(t, now.Add(14*time.Minute), st.History[0].Time.Time)
	assert.Equal(t, fleetv1.Compliant, st.History[1].Compliant)
	assert.Equal(t, int64(3), st.ObservedGeneration)
}

func TestPolicyMessageNamesWhatIsWrong(t *testing.T) {
	msg := policyMessage(fleetv1.NonCompliant, []fleetv1.TemplateStatus{
		{Compliant: fleetv1.Compliant, Message: "configmaps [a] found as specified in namespace x"},
		{Compliant: fleetv1.NonCompliant, Message: "configmaps [b] not found in namespace x"},
		{Compliant: fleetv1.Pending, Message: "Widget w: kind Widget of apiVersion example.com/v1 is not served by the cluster"},
	})
	assert.Equal(t, "NonCompliant; configmaps [b] not found in namespace x; Widget w: kind Widget of apiVersion example.com/v1 is not served by the cluster", msg)
}

func TestSelector(t *testing.T) {
	ns := func(name string, labels map[string]string, phase string) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{"phase": phase}}}
		u.SetName(name)
		u.SetLabels(labels)
		return u
	}
	all := []*unstructured.Unstructured{
		ns("team-a", map[string]string{"env": "prod"}, "Active"), ns("team-b", nil, "Active"), ns("team-old", nil, "Terminating"),
		ns("kube-system", nil, "Active"), ns("default", map[string]string{"env": "prod"}, "Active"),
	}
	for _, tc := range []struct {
		name string
		sel  fleetv1.PolicyNamespaceSelector
		want []string
		err  string
	}{
		{name: "include and exclude globs", sel: fleetv1.PolicyNamespaceSelector{Include: []string{"team-*", "default"}, Exclude: []string{"*-b"}}, want: []string{"default", "team-a"}},
		{name: "labels only", sel: fleetv1.PolicyNamespaceSelector{MatchLabels: map[string]string{"env": "prod"}}, want: []string{"default", "team-a"}},
		{name: "globs and labels", sel: fleetv1.PolicyNamespaceSelector{Include: []string{"team-*"}, MatchLabels: map[string]string{"env": "prod"}}, want: []string{"team-a"}},
		{name: "exclude only", sel: fleetv1.PolicyNamespaceSelector{Exclude: []string{"kube-*", "team-?"}}, want: []string{"default"}},
		{name: "bad globs, each named", sel: fleetv1.PolicyNamespaceSelector{Include: []string{"[a"}, Exclude: []string{"b["}},
			err: "namespaceSelector: include pattern \"[a\": syntax error in pattern\nnamespaceSelector: exclude pattern \"b[\": syntax error in pattern"},
		{name: "bad expression", sel: fleetv1.PolicyNamespaceSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Near"}}},
			err: "namespaceSelector: \"Near\" is not a valid label selector operator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSelector(&tc.sel)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, s.pick(all))
		})
	}
}
