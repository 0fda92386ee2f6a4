package policy_test

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestMustNotHave: a named object and every object carrying a label are
// forbidden. Informed, the policy names them; enforced, it deletes exactly
// them.
func TestMustNotHave(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "mnh", nil)
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: legacy, namespace: mnh}\ndata: {a: '1'}")
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: debug-1, namespace: mnh, labels: {debug: 'true'}}")
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: debug-2, namespace: mnh, labels: {debug: 'true', x: z}}")
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: mnh, labels: {debug: 'false'}}")

	p := newPolicy("no-debug", fleetv1.RemediationInform,
		tmpl(t, fleetv1.MustNotHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: legacy, namespace: mnh}"),
		tmpl(t, fleetv1.MustNotHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: mnh, labels: {debug: 'true'}}"))
	e.source.Set(p)
	e.waitStatus(t, "no-debug", is(fleetv1.NonCompliant, 1,
		message(0, "configmaps [legacy] found in namespace mnh"),
		message(1, "configmaps [debug-1, debug-2] found in namespace mnh")))

	p.Spec.RemediationAction = fleetv1.RemediationEnforce
	e.source.Set(p)
	e.waitStatus(t, "no-debug", is(fleetv1.Compliant, 2, message(1, "configmaps missing as expected in namespace mnh")))
	for _, name := range []string{"legacy", "debug-1", "debug-2"} {
		testutil.Eventually(t, within, func() error {
			if _, err := e.get(cmGVR, "mnh", name); !apierrors.IsNotFound(err) {
				return fmt.Errorf("ConfigMap %s: %v", name, err)
			}
			return nil
		})
	}
	if _, err := e.get(cmGVR, "mnh", "kept"); err != nil {
		t.Errorf("a ConfigMap without the label went: %v", err)
	}
	// A new forbidden object goes as soon as it is created.
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: debug-3, namespace: mnh, labels: {debug: 'true'}}")
	testutil.Eventually(t, within, func() error {
		if _, err := e.get(cmGVR, "mnh", "debug-3"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("ConfigMap debug-3: %v", err)
		}
		return nil
	}, "a forbidden ConfigMap deleted on creation")
}

// TestMustOnlyHave: the template's fields are exact. Extra data keys and
// labels are differences (recorded in status), removed when enforced;
// fields the template does not name are left alone; what only the
// apiserver's defaults add is no difference.
func TestMustOnlyHave(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "moh", nil)
	e.create(t, cmGVR, `apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: moh, labels: {team: a, extra: x}, annotations: {note: kept}}
data: {mode: strict, debug: "true"}
binaryData: {blob: eA==}`)
	e.create(t, rbGVR, `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: viewers, namespace: moh}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}
subjects: [{kind: User, name: alice}]`)

	p := newPolicy("exact", fleetv1.RemediationInform,
		tmpl(t, fleetv1.MustOnlyHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: moh, labels: {team: a}}\ndata: {mode: strict}"),
		// The apiserver fills in the subject's apiGroup.
		tmpl(t, fleetv1.MustOnlyHave, "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: viewers, namespace: moh}\nsubjects: [{kind: User, name: alice}]"))
	e.source.Set(p)
	st := e.waitStatus(t, "exact", is(fleetv1.NonCompliant, 1, message(0, "configmaps [settings] found but not as specified in namespace moh")))
	want := "metadata.labels.extra: want (absent), found \"x\"\ndata.debug: want (absent), found \"true\""
	if ro := st.Templates[0].RelatedObjects; len(ro) != 1 || ro[0].Diff != want {
		t.Errorf("diff:\n%s\nwant:\n%s", dump(ro), want)
	}
	if st.Templates[1].Compliant != fleetv1.Compliant {
		t.Errorf("the RoleBinding differs only by a default, yet: %s", dump(st.Templates[1]))
	}

	p.Spec.RemediationAction = fleetv1.RemediationEnforce
	e.source.Set(p)
	e.waitStatus(t, "exact", is(fleetv1.Compliant, 2))
	cm, err := e.get(cmGVR, "moh", "settings")
	if err != nil {
		t.Fatal(err)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	blob, _, _ := unstructured.NestedString(cm.Object, "binaryData", "blob")
	got := fmt.Sprintf("data %v, labels %v, note %q, blob %q", data, cm.GetLabels(), cm.GetAnnotations()["note"], blob)
	if got != `data map[mode:strict], labels map[team:a], note "kept", blob "eA=="` {
		t.Errorf("after enforcing: %s", got)
	}
	rb, _ := e.get(rbGVR, "moh", "viewers")
	if mf := rb.GetManagedFields(); len(mf) != 1 || strings.Contains(dump(mf), "fleetpulse-policy") {
		t.Errorf("the RoleBinding, compliant but for defaults, was written: %s", dump(mf))
	}
}
