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
	rollout := func(phase fleetv1.RolloutPhase, reason, msg string) *fleetv1.RolloutStatus {
		return &fleetv1.RolloutStatus{Revision: 3, Phase: phase, Reason: reason, Message: msg}
	}
	for _, tc := range []struct {
		name                             string
		obs                              observation
		verified, progressing, available want
	}{
		{name: "done",
			obs: observation{refs: 1, decided: 2, rollout: rollout(fleetv1.RolloutSucceeded, ReasonSucceeded, ""),
				summary: fleetv1.WorkSummary{Total: 2, Applied: 2, Available: 2}, placementDetail: []string{"placement web decides 2 clusters"}},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, "placement web decides 2 clusters"},
			progressing: want{metav1.ConditionFalse, ReasonCompleted, "revision 3 rolled out"},
			available:   want{metav1.ConditionTrue, ReasonAllAvailable, "2 of 2 works available"}},
		{name: "rolling out",
			obs: observation{refs: 1, decided: 3, rollout: rollout(fleetv1.RolloutProgressing, ReasonStarted, "stage 1 of 2 (web/batch-0): 0 of 1 clusters done"),
				summary: fleetv1.WorkSummary{Total: 3, Applied: 3, Available: 2, Degraded: 1}},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionTrue, ReasonRollingOut, "revision 3: stage 1 of 2 (web/batch-0): 0 of 1 clusters done"},
			available:   want{metav1.ConditionFalse, ReasonNotAllAvailable, "2 of 3 works available, 1 degraded"}},
		{name: "paused on a failure",
			obs:         observation{refs: 1, decided: 1, rollout: rollout(fleetv1.RolloutPaused, ReasonFailureBudget, "stage 0 failed")},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionTrue, ReasonFailureBudget, "revision 3: stage 0 failed"},
			available:   want{metav1.ConditionFalse, ReasonNotAllAvailable, "0 of 1 works available"}},
		{name: "rolled back",
			obs:         observation{refs: 1, decided: 1, rollout: rollout(fleetv1.RolloutRolledBack, ReasonFailureBudget, "1 clusters rolled back to revision 2")},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionFalse, "RolledBack", "revision 3: 1 clusters rolled back to revision 2"},
			available:   want{metav1.ConditionFalse, ReasonNotAllAvailable, "0 of 1 works available"}},
		{name: "missing placement and nothing decided",
			obs:         observation{refs: 1, missingRefs: []string{"web"}},
			verified:    want{metav1.ConditionFalse, ReasonPlacementNotFound, "placement web not found"},
			progressing: want{metav1.ConditionFalse, ReasonNoClusters, "no cluster is decided"},
			available:   want{metav1.ConditionFalse, ReasonNoClusters, "no cluster is decided"}},
		{name: "conflict and missing namespace",
			obs:         observation{refs: 1, decided: 2, conflicts: []string{"a"}, missingNS: []string{"b"}, rollout: rollout(fleetv1.RolloutProgressing, ReasonStarted, "")},
			verified:    want{metav1.ConditionTrue, ReasonAsExpected, ""},
			progressing: want{metav1.ConditionTrue, ReasonWorkConflict, "a ManifestWork of this name that the set does not own is in the way in a; no namespace yet for cluster b"},
			available:   want{metav1.ConditionFalse, ReasonNotAllAvailable, "0 of 2 works available"}},
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
