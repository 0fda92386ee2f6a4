package template

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestEvaluate(t *testing.T) {
	named := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: '1'}"
	unnamed := "apiVersion: v1\nkind: ConfigMap\nmetadata: {labels: {forbidden: 'true'}}"
	cmIn := func(name, extra string) string {
		return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", namespace: team-a" + extra + "}\ndata: {a: '1'}"
	}
	type want struct {
		name      string
		compliant bool
		reason    string
		action    Action
	}
	for _, tc := range []struct {
		name      string
		ct        fleetv1.ComplianceType
		tmpl      string
		found     []string
		compliant bool
		objects   []want
	}{
		{name: "musthave: missing is created in the scope's namespace", ct: fleetv1.MustHave, tmpl: named,
			objects: []want{{"settings", false, ReasonNotFound, Create}}},
		{name: "musthave: found as specified", ct: fleetv1.MustHave, tmpl: named, found: []string{cmIn("settings", "")},
			compliant: true, objects: []want{{"settings", true, ReasonFoundAsSpecified, None}}},
		{name: "mustonlyhave: found otherwise is updated", ct: fleetv1.MustOnlyHave, tmpl: named,
			found:   []string{"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a}\ndata: {a: '1', b: '2'}"},
			objects: []want{{"settings", false, ReasonNotAsSpecified, Update}}},
		{name: "musthave without a name: one compliant object is enough", ct: fleetv1.MustHave, tmpl: unnamed,
			found:     []string{cmIn("x", ""), cmIn("w", ", labels: {forbidden: 'true'}")},
			compliant: true, objects: []want{{"w", true, ReasonFoundAsSpecified, None}}},
		{name: "musthave without a name: nothing to create", ct: fleetv1.MustHave, tmpl: unnamed,
			objects: []want{{"", false, ReasonNotFound, None}}},
		{name: "musthave without a name: the objects that differ, left alone", ct: fleetv1.MustHave, tmpl: unnamed,
			found: []string{cmIn("x", "")}, objects: []want{{"x", false, ReasonNotAsSpecified, None}}},
		{name: "mustnothave: the named object is deleted", ct: fleetv1.MustNotHave, tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}",
			found: []string{cmIn("x", "")}, objects: []want{{"x", false, ReasonFound, Delete}}},
		{name: "mustnothave: the named object without the fields complies", ct: fleetv1.MustNotHave,
			tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '2'}", found: []string{cmIn("x", "")},
			compliant: true, objects: []want{{"x", true, ReasonNotAsSpecified, None}}},
		{name: "mustnothave: missing as expected", ct: fleetv1.MustNotHave, tmpl: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}",
			compliant: true, objects: []want{{"x", true, ReasonMissingAsExpected, None}}},
		{name: "mustnothave without a name: every matching object", ct: fleetv1.MustNotHave, tmpl: unnamed,
			found:   []string{cmIn("x", ", labels: {forbidden: 'true'}"), cmIn("w", ""), cmIn("z", ", labels: {forbidden: 'true', b: c}")},
			objects: []want{{"x", false, ReasonFound, Delete}, {"z", false, ReasonFound, Delete}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := parse(t, tc.ct, tc.tmpl)
			var found []*unstructured.Unstructured
			for _, f := range tc.found {
				found = append(found, obj(t, f))
			}
			out := tm.Evaluate("team-a", found)
			assert.Equal(t, tc.compliant, out.Compliant)
			var got []want
			for _, r := range out.Objects {
				got = append(got, want{r.Name, r.Compliant, r.Reason, r.Action})
				assert.Equal(t, "team-a", r.Namespace)
				assert.Equal(t, r.Action == Create || r.Action == Apply || r.Action == Update, r.Write != nil, "a write for %s", r.Action)
				if r.Action == Create {
					assert.Equal(t, "team-a", r.Write.GetNamespace())
					assert.Equal(t, map[string]any{"a": "1"}, r.Write.Object["data"])
				}
			}
			assert.Equal(t, tc.objects, got)
		})
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, ct, def, err string
	}{
		{name: "upper-case type", ct: "MustHave", def: `{"apiVersion":"v1","kind":"ConfigMap"}`},
		{name: "unknown type", ct: "mayhave", def: `{"apiVersion":"v1","kind":"ConfigMap"}`, err: `complianceType "mayhave": want musthave, mustonlyhave or mustnothave`},
		{name: "empty", ct: "musthave", err: "objectDefinition is empty"},
		{name: "no kind", ct: "musthave", def: `{"apiVersion":"v1"}`, err: "objectDefinition names no kind"},
		{name: "not JSON", ct: "musthave", def: `[1]`, err: "objectDefinition is not a JSON object"},
		{name: "metadata not an object", ct: "musthave", def: `{"apiVersion":"v1","kind":"ConfigMap","metadata":"x"}`, err: "metadata is a string"},
		{name: "a name that is no string", ct: "musthave", def: `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":3}}`, err: "metadata.name is a int64"},
		{name: "bad stringData", ct: "musthave", def: `{"apiVersion":"v1","kind":"Secret","stringData":{"a":1}}`, err: "stringData.a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(fleetv1.ObjectTemplate{ComplianceType: fleetv1.ComplianceType(tc.ct), ObjectDefinition: runtime.RawExtension{Raw: []byte(tc.def)}})
			if tc.err == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// TestSameAs: what the apiserver defaults is no difference once a dry run
// shows the write would change nothing.
func TestSameAs(t *testing.T) {
	rb := "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: view, namespace: a}\n"
	tm := parse(t, fleetv1.MustOnlyHave, rb+"subjects: [{kind: User, name: alice}]")
	cur := obj(t, rb+"subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]")
	diffs, write := tm.Compare(cur)
	require.Len(t, diffs, 1)
	require.NotNil(t, write)
	dryRun := obj(t, rb+"subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]")
	assert.True(t, tm.SameAs(dryRun, cur))
	changed := obj(t, rb+"subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}]")
	assert.False(t, tm.SameAs(changed, cur))
}
