package template

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func obj(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	require.NoError(t, err)
	u := &unstructured.Unstructured{}
	require.NoError(t, u.UnmarshalJSON(j))
	return u
}

func parse(t *testing.T, ct fleetv1.ComplianceType, y string) *Template {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	require.NoError(t, err)
	tm, err := Parse(fleetv1.ObjectTemplate{ComplianceType: ct, ObjectDefinition: runtime.RawExtension{Raw: j}})
	require.NoError(t, err)
	return tm
}

const cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-a"

func TestCompare(t *testing.T) {
	rb := "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: view, namespace: team-a}\n" +
		"roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\n"
	np := "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny, namespace: team-a}\n"
	rq := "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: quota, namespace: team-a}\n"
	secret := "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: team-a}\n"
	for _, tc := range []struct {
		name          string
		ct            fleetv1.ComplianceType
		tmpl, current string
		diffs         []string
		// write, when given, is the object to write, compared field by
		// field with what Compare returns.
		write string
	}{
		{name: "musthave: a map is a subset", ct: fleetv1.MustHave,
			tmpl: cm + "}\ndata: {a: '1'}", current: cm + "}\ndata: {a: '1', b: '2'}"},
		{name: "musthave: a differing value", ct: fleetv1.MustHave,
			tmpl: cm + "}\ndata: {a: '1'}", current: cm + "}\ndata: {a: '0', b: '2'}",
			diffs: []string{`data.a: want "1", found "0"`},
			write: cm + "}\ndata: {a: '1', b: '2'}"},
		{name: "musthave: a missing key and a missing field", ct: fleetv1.MustHave,
			tmpl: cm + "}\ndata: {a: '1', c: '3'}\nbinaryData: {x: eA==}", current: cm + "}\ndata: {a: '1'}",
			diffs: []string{`binaryData: want {"x":"eA=="}, found (absent)`, `data.c: want "3", found (absent)`}},
		{name: "musthave: labels are a subset, odd keys quoted", ct: fleetv1.MustHave,
			tmpl:    cm + ", labels: {team: a, app.kubernetes.io/name: web}}",
			current: cm + ", labels: {team: b, other: x}}",
			diffs:   []string{`metadata.labels["app.kubernetes.io/name"]: want "web", found (absent)`, `metadata.labels.team: want "a", found "b"`},
			write:   cm + ", labels: {team: a, app.kubernetes.io/name: web}}"},
		{name: "musthave: the engine's and kubectl's annotations are no difference", ct: fleetv1.MustHave,
			tmpl:    cm + ", annotations: {owner: me}}",
			current: cm + ", annotations: {owner: me, policy.fleetpulse.io/created-by: ns/p}}"},
		{name: "musthave: named list items by name, others free", ct: fleetv1.MustHave,
			tmpl: rb + "subjects: [{kind: User, name: alice}]",
			current: rb + "subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: bob}," +
				" {apiGroup: rbac.authorization.k8s.io, kind: User, name: alice}]"},
		{name: "musthave: a missing named item is appended", ct: fleetv1.MustHave,
			tmpl:    rb + "subjects: [{kind: User, name: carol}]",
			current: rb + "subjects: [{kind: User, name: bob}]",
			diffs:   []string{`subjects[name=carol]: want {"kind":"User","name":"carol"}, found (absent)`},
			write:   rb + "subjects: [{kind: User, name: bob}, {kind: User, name: carol}]"},
		{name: "musthave: a named item differs", ct: fleetv1.MustHave,
			tmpl:    rb + "subjects: [{kind: Group, name: bob}]",
			current: rb + "subjects: [{kind: User, name: bob, apiGroup: rbac.authorization.k8s.io}]",
			diffs:   []string{`subjects[name=bob].kind: want "Group", found "User"`},
			write:   rb + "subjects: [{kind: Group, name: bob, apiGroup: rbac.authorization.k8s.io}]"},
		{name: "musthave: plain list items by value", ct: fleetv1.MustHave,
			tmpl: np + "spec: {podSelector: {}, policyTypes: [Ingress]}", current: np + "spec: {podSelector: {}, policyTypes: [Egress, Ingress]}"},
		{name: "musthave: a missing plain item", ct: fleetv1.MustHave,
			tmpl: np + "spec: {policyTypes: [Egress]}", current: np + "spec: {podSelector: {}, policyTypes: [Ingress]}",
			diffs: []string{`spec.policyTypes: want "Egress", found (no matching item)`},
			write: np + "spec: {podSelector: {}, policyTypes: [Ingress, Egress]}"},
		{name: "musthave: object items carried by a bigger item", ct: fleetv1.MustHave,
			tmpl:    np + "spec: {ingress: [{from: [{podSelector: {}}]}]}",
			current: np + "spec: {ingress: [{ports: [{port: 80}]}, {from: [{podSelector: {}}], ports: [{port: 443}]}]}"},
		{name: "musthave: quantities and numbers by value", ct: fleetv1.MustHave,
			tmpl:    rq + "spec: {hard: {cpu: 1000m, memory: 1Gi, pods: '10'}, x: 2}",
			current: rq + "spec: {hard: {cpu: '1', memory: 1024Mi, pods: '20'}, x: 2.0}",
			diffs:   []string{`spec.hard.pods: want "10", found "20"`}},
		{name: "musthave: a type mismatch", ct: fleetv1.MustHave,
			tmpl: cm + "}\ndata: {a: '1'}", current: cm + "}\ndata: '1'",
			diffs: []string{`data: want {"a":"1"}, found "1"`}},
		{name: "musthave: null is any value", ct: fleetv1.MustHave,
			tmpl: cm + "}\ndata: {a: null}", current: cm + "}\ndata: {a: x}"},
		{name: "musthave: a Secret's values are redacted", ct: fleetv1.MustHave,
			tmpl: secret + "data: {user: YQ==}\nstringData: {password: hunter2}", current: secret + "data: {user: Yg==, password: aHVudGVyMg==}",
			diffs: []string{`data.user: want (redacted), found (redacted)`}},
		{name: "musthave: a Secret's stringData is its data", ct: fleetv1.MustHave,
			tmpl: secret + "stringData: {password: hunter2}", current: secret + "data: {password: aHVudGVyMg==}"},
		{name: "musthave: a Secret's missing data says absent", ct: fleetv1.MustHave,
			tmpl: secret + "stringData: {password: hunter2}", current: secret + "type: Opaque",
			diffs: []string{`data: want (redacted), found (absent)`}},

		{name: "mustonlyhave: exact", ct: fleetv1.MustOnlyHave,
			tmpl: cm + "}\ndata: {a: '1'}", current: cm + ", resourceVersion: '7'}\ndata: {a: '1'}\nbinaryData: {x: eA==}"},
		{name: "mustonlyhave: an extra key", ct: fleetv1.MustOnlyHave,
			tmpl: cm + "}\ndata: {a: '1'}", current: cm + ", resourceVersion: '7'}\ndata: {a: '1', extra: x}\nbinaryData: {x: eA==}",
			diffs: []string{`data.extra: want (absent), found "x"`},
			write: cm + ", resourceVersion: '7'}\ndata: {a: '1'}\nbinaryData: {x: eA==}"},
		{name: "mustonlyhave: extra labels; the engine's annotation is kept", ct: fleetv1.MustOnlyHave,
			tmpl:    cm + ", labels: {team: a}, annotations: {owner: me}}",
			current: cm + ", labels: {team: a, extra: x}, annotations: {owner: me, policy.fleetpulse.io/created-by: ns/p, note: x}}",
			diffs:   []string{`metadata.annotations.note: want (absent), found "x"`, `metadata.labels.extra: want (absent), found "x"`},
			write:   cm + ", labels: {team: a}, annotations: {owner: me, policy.fleetpulse.io/created-by: ns/p}}"},
		{name: "mustonlyhave: extra and missing list items", ct: fleetv1.MustOnlyHave,
			tmpl:    rb + "subjects: [{kind: User, name: alice}]",
			current: rb + "subjects: [{kind: User, name: bob}, {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]",
			diffs: []string{`subjects[name=alice].apiGroup: want (absent), found "rbac.authorization.k8s.io"`,
				`subjects[name=bob]: want (absent), found {"kind":"User","name":"bob"}`},
			write: rb + "subjects: [{kind: User, name: alice}]"},
		{name: "mustonlyhave: an extra plain item by position", ct: fleetv1.MustOnlyHave,
			tmpl: np + "spec: {policyTypes: [Ingress]}", current: np + "spec: {policyTypes: [Egress, Ingress]}",
			diffs: []string{`spec.policyTypes[0]: want (absent), found "Egress"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tm := parse(t, tc.ct, tc.tmpl)
			cur := obj(t, tc.current)
			diffs, write := tm.Compare(cur)
			var got []string
			for _, d := range diffs {
				got = append(got, d.String())
			}
			assert.Equal(t, tc.diffs, got)
			if len(tc.diffs) == 0 {
				assert.Nil(t, write, "a compliant object needs no write")
				return
			}
			require.NotNil(t, write)
			if tc.write != "" {
				want := obj(t, tc.write)
				for k, v := range want.Object {
					assert.Equal(t, v, write.Object[k], "field %s of the write", k)
				}
			}
		})
	}
}
