package work

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func deployment(replicas, available, observed, generation int64) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "default", "generation": generation},
		"spec":     map[string]any{"replicas": replicas},
		"status": map[string]any{
			"replicas": replicas, "availableReplicas": available, "updatedReplicas": replicas, "observedGeneration": observed,
			"conditions": []any{map[string]any{"type": "Available", "status": "True"}},
		},
	}}
	if available > 0 {
		_ = unstructured.SetNestedField(u.Object, available, "status", "readyReplicas")
	}
	return u
}

func TestFeedback(t *testing.T) {
	for _, tc := range []struct {
		name  string
		obj   *unstructured.Unstructured
		rules []fleetv1.FeedbackRule
		want  map[string]string
		err   bool
	}{
		{"well-known deployment", deployment(3, 3, 1, 1), []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}},
			map[string]string{"readyReplicas": "3", "replicas": "3", "availableReplicas": "3", "updatedReplicas": "3"}, false},
		{"absent fields are left out", deployment(3, 0, 1, 1), []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}},
			map[string]string{"replicas": "3", "availableReplicas": "0", "updatedReplicas": "3"}, false},
		{"json paths", deployment(2, 2, 1, 1), []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackJSONPaths, JSONPaths: []fleetv1.JSONPath{
			{Name: "ready", Path: ".status.readyReplicas"},
			{Name: "available", Path: `{.status.conditions[?(@.type=="Available")].status}`},
			{Name: "conditions", Path: ".status.conditions[*].type"},
			{Name: "missing", Path: ".status.nothing"},
		}}}, map[string]string{"ready": "2", "available": `"True"`, "conditions": `"Available"`}, false},
		{"bad path", deployment(1, 1, 1, 1), []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackJSONPaths, JSONPaths: []fleetv1.JSONPath{
			{Name: "bad", Path: ".status[?(@"}, {Name: "ok", Path: ".spec.replicas"},
		}}}, map[string]string{"ok": "1"}, true},
		{"well-known of another kind is empty", &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}},
			[]fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}}, map[string]string{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := feedback(tc.obj, tc.rules)
			if (err != nil) != tc.err {
				t.Fatalf("err %v, want error %v", err, tc.err)
			}
			m := map[string]string{}
			for _, v := range got {
				m[v.Name] = string(v.Value.Raw)
			}
			if len(m) != len(tc.want) {
				t.Fatalf("feedback %v, want %v", m, tc.want)
			}
			for k, v := range tc.want {
				if m[k] != v {
					t.Errorf("%s = %s, want %s (all: %v)", k, m[k], v, m)
				}
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  *unstructured.Unstructured
		want bool
	}{
		{"all available", deployment(3, 3, 2, 2), true},
		{"surge counts", deployment(3, 4, 2, 2), true},
		{"short", deployment(3, 2, 2, 2), false},
		{"spec not seen", deployment(3, 3, 1, 2), false},
		{"a ConfigMap exists", &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}, true},
	} {
		if got, why := available(tc.obj); got != tc.want {
			t.Errorf("%s: available %v (%s), want %v", tc.name, got, why, tc.want)
		}
	}
}

func TestChangedIgnoresStatusAndBookkeeping(t *testing.T) {
	a := deployment(3, 1, 1, 1)
	a.SetResourceVersion("1")
	b := a.DeepCopy()
	b.SetResourceVersion("2")
	b.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "x"}})
	_ = unstructured.SetNestedField(b.Object, int64(3), "status", "availableReplicas")
	if changed(a, b) {
		t.Error("a status and resourceVersion change counts as drift")
	}
	_ = unstructured.SetNestedField(b.Object, int64(5), "spec", "replicas")
	if !changed(a, b) {
		t.Error("a spec change is not drift")
	}
}

func TestConfigForAndOrphaned(t *testing.T) {
	id := objectID{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespace: "default", Name: "web"}
	spec := &fleetv1.ManifestWorkSpec{ManifestConfigs: []fleetv1.ManifestConfigOption{
		{ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "default", Name: "other"},
			UpdateStrategy: &fleetv1.UpdateStrategy{Type: fleetv1.UpdateReadOnly}},
		{ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "default", Name: "web"},
			UpdateStrategy: &fleetv1.UpdateStrategy{Type: fleetv1.UpdateServerSideApply, Force: true},
			FeedbackRules:  []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}}},
	}}
	s, rules := configFor(spec, id)
	if s.Type != fleetv1.UpdateServerSideApply || !s.Force || len(rules) != 1 {
		t.Errorf("configFor = %+v %+v", s, rules)
	}
	if s, _ := configFor(&fleetv1.ManifestWorkSpec{}, id); s.Type != fleetv1.UpdateServerSideApply || s.Force {
		t.Errorf("default strategy %+v, want ServerSideApply without force", s)
	}
	if orphaned(nil, id) || orphaned(&fleetv1.DeleteOption{PropagationPolicy: fleetv1.DeleteForeground}, id) {
		t.Error("Foreground orphans")
	}
	if !orphaned(&fleetv1.DeleteOption{PropagationPolicy: fleetv1.DeleteOrphan}, id) {
		t.Error("Orphan does not orphan")
	}
	sel := &fleetv1.DeleteOption{PropagationPolicy: fleetv1.DeleteSelectivelyOrphan, SelectivelyOrphan: []fleetv1.ResourceIdentifier{
		{Group: "apps", Resource: "deployments", Namespace: "default", Name: "web"}}}
	if !orphaned(sel, id) || orphaned(sel, objectID{Resource: "configmaps", Namespace: "default", Name: "web"}) {
		t.Error("SelectivelyOrphan orphans the wrong objects")
	}
}

func TestDecodeManifestDropsLiveFields(t *testing.T) {
	u, err := decodeManifest(fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(
		`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","resourceVersion":"7","uid":"x","managedFields":[]},"data":{"k":"v"}}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if u.GetResourceVersion() != "" || u.GetUID() != "" || u.GetManagedFields() != nil {
		t.Errorf("live fields kept: %v", u.Object)
	}
	for _, bad := range []string{`{"kind":"ConfigMap","metadata":{"name":"a"}}`, `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"generateName":"a-"}}`, `nope`} {
		if _, err := decodeManifest(fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(bad)}}); err == nil {
			t.Errorf("decodeManifest(%s): no error", bad)
		}
	}
}

func TestSetConditionKeepsTransitionTime(t *testing.T) {
	var conds []metav1.Condition
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 500, time.UTC)
	setCondition(&conds, "Applied", metav1.ConditionTrue, "Applied", "", 1, t0)
	setCondition(&conds, "Applied", metav1.ConditionTrue, "DriftCorrected", "again", 2, t0.Add(time.Minute))
	if !conds[0].LastTransitionTime.Time.Equal(t0.Truncate(time.Second)) || conds[0].Reason != "DriftCorrected" {
		t.Errorf("condition %+v: want the first transition time (whole seconds) and the new reason", conds[0])
	}
}

// TestWorkConditions checks the work's conditions as the agent reports them
// after a pass, Progressing in particular, through a new generation.
func TestWorkConditions(t *testing.T) {
	a := &Agent{log: slog.New(slog.DiscardHandler)}
	st := &workState{}
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "settings", "namespace": "default"}}}
	mfs := []*manifest{
		{ordinal: 0, id: objectID{Version: "v1", Kind: "ConfigMap", Resource: "configmaps", Namespace: "default", Name: "settings"}},
		{ordinal: 1, id: objectID{Group: "apps", Version: "v1", Kind: "Deployment", Resource: "deployments", Namespace: "default", Name: "web"}},
	}
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	type want struct {
		status  metav1.ConditionStatus
		reason  string
		message string
	}
	for i, step := range []struct {
		name       string
		generation int64
		web        *unstructured.Unstructured // nil: its apply failed
		applied    metav1.ConditionStatus
		available  metav1.ConditionStatus
		degraded   metav1.ConditionStatus
		progress   want
		// changed: Progressing's transition time is this step's.
		changed bool
	}{
		{name: "applied, deployment not yet available", generation: 1, web: deployment(3, 1, 1, 1),
			applied: metav1.ConditionTrue, available: metav1.ConditionFalse, degraded: metav1.ConditionTrue,
			progress: want{metav1.ConditionTrue, ReasonWaitingForAvailable, "generation 1 applied; waiting for Deployment default/web: 1 of 3 replicas available"},
			changed:  true},
		{name: "all available", generation: 1, web: deployment(3, 3, 1, 1),
			applied: metav1.ConditionTrue, available: metav1.ConditionTrue, degraded: metav1.ConditionFalse,
			progress: want{metav1.ConditionFalse, ReasonCompleted, "generation 1 applied and available"}, changed: true},
		{name: "steady", generation: 1, web: deployment(3, 3, 1, 1),
			applied: metav1.ConditionTrue, available: metav1.ConditionTrue, degraded: metav1.ConditionFalse,
			progress: want{metav1.ConditionFalse, ReasonCompleted, "generation 1 applied and available"}},
		{name: "a new generation that fails to apply", generation: 2,
			applied: metav1.ConditionFalse, available: metav1.ConditionUnknown, degraded: metav1.ConditionTrue,
			progress: want{metav1.ConditionTrue, ReasonApplying, "generation 2: 1 of 2 objects not applied yet"}, changed: true},
		{name: "applied, its spec not yet seen by the deployment controller", generation: 2, web: deployment(3, 3, 1, 2),
			applied: metav1.ConditionTrue, available: metav1.ConditionFalse, degraded: metav1.ConditionTrue,
			progress: want{metav1.ConditionTrue, ReasonWaitingForAvailable,
				"generation 2 applied; waiting for Deployment default/web: the deployment controller has not seen the latest spec yet"}},
		{name: "the new generation available", generation: 2, web: deployment(3, 3, 2, 2),
			applied: metav1.ConditionTrue, available: metav1.ConditionTrue, degraded: metav1.ConditionFalse,
			progress: want{metav1.ConditionFalse, ReasonCompleted, "generation 2 applied and available"}, changed: true},
	} {
		now := t0.Add(time.Duration(i) * time.Minute)
		results := []*applied{{after: cm}, {after: step.web}}
		errs := []error{nil, nil}
		if step.web == nil {
			results[1], errs[1] = nil, errors.New("admission webhook said no")
		}
		status := a.status(&agentapi.WorkItem{Name: "app", Generation: step.generation}, st, mfs, results, errs, now)
		st.prev = status
		for typ, s := range map[string]metav1.ConditionStatus{fleetv1.WorkApplied: step.applied, fleetv1.WorkAvailable: step.available, fleetv1.WorkDegraded: step.degraded} {
			if c := meta.FindStatusCondition(status.Conditions, typ); c == nil || c.Status != s || c.ObservedGeneration != step.generation {
				t.Errorf("%s: %s = %+v, want %s for generation %d", step.name, typ, c, s, step.generation)
			}
		}
		c := meta.FindStatusCondition(status.Conditions, fleetv1.WorkProgressing)
		if c == nil || c.Status != step.progress.status || c.Reason != step.progress.reason || c.Message != step.progress.message || c.ObservedGeneration != step.generation {
			t.Errorf("%s: Progressing = %+v, want %+v", step.name, c, step.progress)
			continue
		}
		if changed := c.LastTransitionTime.Time.Equal(now); changed != step.changed {
			t.Errorf("%s: Progressing changed at %s (now %s), want a change: %v", step.name, c.LastTransitionTime, now, step.changed)
		}
	}
}
