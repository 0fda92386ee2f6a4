package workset

import (
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestPlan(t *testing.T) {
	// a, b in group 0; c, d in group 1.
	targets := []target{{"a", 0}, {"b", 0}, {"c", 1}, {"d", 1}}
	all := func(s workState) map[string]workState {
		return map[string]workState{"a": s, "b": s, "c": s, "d": s}
	}
	for _, tc := range []struct {
		name     string
		strategy fleetv1.RolloutStrategy
		state    map[string]workState
		apply    []string
		waiting  int
	}{
		{name: "All creates everything", state: all(stateMissing), apply: []string{"a", "b", "c", "d"}},
		{name: "All updates only the outdated", strategy: fleetv1.RolloutStrategy{Type: RolloutAll},
			state: map[string]workState{"a": stateDone, "b": stateOutdated, "c": stateRolling, "d": stateMissing}, apply: []string{"b", "d"}},
		{name: "All leaves a work being deleted alone", state: map[string]workState{"a": stateDeleting, "b": stateDone, "c": stateDone, "d": stateDone}},
		{name: "Progressive starts with maxConcurrency", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: 2},
			state: all(stateOutdated), apply: []string{"a", "b"}, waiting: 2},
		{name: "Progressive defaults to one at a time", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive},
			state: all(stateOutdated), apply: []string{"a"}, waiting: 3},
		{name: "Progressive waits while the window is full", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: 2},
			state: map[string]workState{"a": stateRolling, "b": stateRolling, "c": stateOutdated, "d": stateOutdated}, waiting: 2},
		{name: "Progressive moves on as works become available", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: 2},
			state: map[string]workState{"a": stateDone, "b": stateRolling, "c": stateOutdated, "d": stateOutdated}, apply: []string{"c"}, waiting: 1},
		{name: "Progressive counts new clusters in the window", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: 1},
			state: map[string]workState{"a": stateDone, "b": stateDone, "c": stateMissing, "d": stateDone}, apply: []string{"c"}},
		{name: "ProgressivePerGroup does the first group", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup},
			state: all(stateOutdated), apply: []string{"a", "b"}, waiting: 2},
		{name: "ProgressivePerGroup waits for the group to be available", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup},
			state: map[string]workState{"a": stateDone, "b": stateRolling, "c": stateOutdated, "d": stateOutdated}, waiting: 2},
		{name: "ProgressivePerGroup then the next", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup},
			state: map[string]workState{"a": stateDone, "b": stateDone, "c": stateOutdated, "d": stateMissing}, apply: []string{"c", "d"}},
		{name: "ProgressivePerGroup finishes a group a new cluster joined", strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup},
			state: map[string]workState{"a": stateRolling, "b": stateMissing, "c": stateOutdated, "d": stateOutdated}, apply: []string{"b"}, waiting: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apply, waiting := plan(tc.strategy, targets, tc.state)
			if !slices.Equal(apply, tc.apply) || waiting != tc.waiting {
				t.Errorf("plan = %v, %d waiting; want %v, %d", apply, waiting, tc.apply, tc.waiting)
			}
		})
	}
}

func manifest(s string) fleetv1.Manifest {
	return fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(s)}}
}

func TestStateOf(t *testing.T) {
	template := &fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{
		manifest(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"v"}}`)}}}
	work := func(spec string, gen, observed int64, avail metav1.ConditionStatus, condGen int64) *fleetv1.ManifestWork {
		w := &fleetv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Generation: gen},
			Spec:   fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{manifest(spec)}}},
			Status: fleetv1.ManifestWorkStatus{ObservedGeneration: observed}}
		if avail != "" {
			w.Status.Conditions = []metav1.Condition{{Type: fleetv1.WorkAvailable, Status: avail, ObservedGeneration: condGen}}
		}
		return w
	}
	// The same object, keys in another order and spaced.
	same := `{ "kind": "ConfigMap", "apiVersion": "v1", "data": {"k": "v"}, "metadata": {"name": "x"} }`
	for _, tc := range []struct {
		name string
		work *fleetv1.ManifestWork
		want workState
	}{
		{name: "none", want: stateMissing},
		{name: "other spec", work: work(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"w"}}`, 1, 1, metav1.ConditionTrue, 1), want: stateOutdated},
		{name: "same spec, not applied yet", work: work(same, 2, 1, metav1.ConditionTrue, 1), want: stateRolling},
		{name: "same spec, applied, not available", work: work(same, 2, 2, metav1.ConditionFalse, 2), want: stateRolling},
		{name: "same spec, available for an older generation", work: work(same, 2, 2, metav1.ConditionTrue, 1), want: stateRolling},
		{name: "same spec, available", work: work(same, 2, 2, metav1.ConditionTrue, 2), want: stateDone},
		{name: "available, condition without generation", work: work(same, 2, 2, metav1.ConditionTrue, 0), want: stateDone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := stateOf(tc.work, hashOf(tc.work), templateHash(template)); got != tc.want {
				t.Errorf("stateOf = %d, want %d", got, tc.want)
			}
		})
	}
	// The agent reports Progressing beside Available; the rollout goes by
	// Available for the generation alone.
	for _, tc := range []struct {
		avail, progressing metav1.ConditionStatus
		want               workState
	}{
		{metav1.ConditionFalse, metav1.ConditionTrue, stateRolling},
		{metav1.ConditionTrue, metav1.ConditionFalse, stateDone},
	} {
		w := work(same, 2, 2, tc.avail, 2)
		w.Status.Conditions = append(w.Status.Conditions, metav1.Condition{Type: fleetv1.WorkProgressing, Status: tc.progressing, ObservedGeneration: 2})
		if got := stateOf(w, hashOf(w), templateHash(template)); got != tc.want {
			t.Errorf("stateOf a work Available %s, Progressing %s = %d, want %d", tc.avail, tc.progressing, got, tc.want)
		}
	}
	deleting := work(same, 1, 1, metav1.ConditionTrue, 1)
	deleting.DeletionTimestamp = &metav1.Time{}
	if got := stateOf(deleting, hashOf(deleting), templateHash(template)); got != stateDeleting {
		t.Errorf("stateOf a deleting work = %d", got)
	}
}

func hashOf(w *fleetv1.ManifestWork) string {
	if w == nil {
		return ""
	}
	return templateHash(&w.Spec)
}
