package workset

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestSummarise(t *testing.T) {
	w := func(conds ...string) *fleetv1.ManifestWork {
		out := &fleetv1.ManifestWork{}
		for _, c := range conds {
			out.Status.Conditions = append(out.Status.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue})
		}
		out.Status.Conditions = append(out.Status.Conditions, metav1.Condition{Type: fleetv1.WorkProgressing, Status: metav1.ConditionFalse})
		return out
	}
	got := summarise([]*fleetv1.ManifestWork{
		w(fleetv1.WorkApplied, fleetv1.WorkAvailable),
		w(fleetv1.WorkApplied, fleetv1.WorkDegraded),
		w(),
	})
	if want := (fleetv1.WorkSummary{Total: 3, Applied: 2, Available: 1, Degraded: 1}); got != want {
		t.Errorf("summarise = %+v, want %+v", got, want)
	}
}

func TestConditions(t *testing.T) {
	type want struct {
		status  metav1.ConditionStatus
		reason  string
		message string
	}
	for _, tc := range []struct {
		name                             string
		obs                              observation
		verified, progressing, available want
	}{
		{name: "done",
			obs: observation{refs: 1, decided: 2, states: map[string]workState{"a": stateDone, "b": stateDone},
				summary: fleetv1.WorkSummary{Total: 2, Applied: 2, Available: 2}, placementDetail: []string{"placement web decides 2 clusters"}},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, "placement web decides 2 clusters"},
			progressing: want{metav1.ConditionFalse, ReasonCompleted, "2 of 2 clusters have the current template available"},
			available:   want{metav1.ConditionTrue, ReasonAllAvailable, "2 of 2 works available"}},
		{name: "rolling out",
			obs: observation{refs: 1, decided: 3, states: map[string]workState{"a": stateDone, "b": stateRolling, "c": stateOutdated}, waiting: 1,
				strategyNote: ", Progressive at 1 at a time", summary: fleetv1.WorkSummary{Total: 3, Applied: 3, Available: 2, Degraded: 1}},
			verified: want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionTrue, ReasonRollingOut,
				"1 of 3 clusters have the current template available; 1 rolling out, 1 to update (1 waiting their turn, Progressive at 1 at a time)"},
			available: want{metav1.ConditionFalse, ReasonNotAllAvailable, "2 of 3 works available, 1 degraded"}},
		{name: "missing placement and nothing decided",
			obs:         observation{refs: 1, missingRefs: []string{"web"}, states: map[string]workState{}},
			verified:    want{metav1.ConditionFalse, ReasonPlacementNotFound, "placement web not found"},
			progressing: want{metav1.ConditionFalse, ReasonNoClusters, "no cluster is decided"},
			available:   want{metav1.ConditionFalse, ReasonNoClusters, "no cluster is decided"}},
		{name: "conflict and missing namespace",
			obs: observation{refs: 1, decided: 2, states: map[string]workState{"a": stateMissing, "b": stateMissing},
				conflicts: []string{"a"}, missingNS: []string{"b"}},
			verified: want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionTrue, ReasonWorkConflict,
				"0 of 2 clusters have the current template available; a ManifestWork of this name that the set does not own is in the way in a; no namespace yet for cluster b"},
			available: want{metav1.ConditionFalse, ReasonNotAllAvailable, "0 of 2 works available"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conds := conditions(tc.obs, 7)
			for typ, w := range map[string]want{ConditionPlacementVerified: tc.verified, ConditionProgressing: tc.progressing, ConditionAvailable: tc.available} {
				c := meta.FindStatusCondition(conds, typ)
				if c == nil || c.Status != w.status || c.Reason != w.reason || c.Message != w.message || c.ObservedGeneration != 7 {
					t.Errorf("%s = %+v, want %+v", typ, c, w)
				}
			}
		})
	}
}
