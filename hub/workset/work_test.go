package workset

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func manifest(s string) fleetv1.Manifest {
	return fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: []byte(s)}}
}

// TestOutcomeOf: success as Open Cluster Management's ManifestWorkReplicaSet
// decides it — Applied and Available for the current generation, unless
// Progressing (still rolling) or Degraded without Progressing (failed).
func TestOutcomeOf(t *testing.T) {
	type c struct {
		typ    string
		status metav1.ConditionStatus
		gen    int64
	}
	work := func(gen, observed int64, conds ...c) *fleetv1.ManifestWork {
		w := &fleetv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Status: fleetv1.ManifestWorkStatus{ObservedGeneration: observed}}
		for _, cd := range conds {
			w.Status.Conditions = append(w.Status.Conditions, metav1.Condition{Type: cd.typ, Status: cd.status, ObservedGeneration: cd.gen, Reason: "R"})
		}
		return w
	}
	T, F := metav1.ConditionTrue, metav1.ConditionFalse
	for _, tc := range []struct {
		name    string
		work    *fleetv1.ManifestWork
		want    workOutcome
		applied bool
	}{
		{name: "not applied yet", work: work(2, 1, c{fleetv1.WorkApplied, T, 1}, c{fleetv1.WorkAvailable, T, 1}), want: workProgressing},
		{name: "applied, not available", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, F, 2}), want: workProgressing, applied: true},
		{name: "available for an older generation", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, T, 1}), want: workProgressing, applied: true},
		{name: "applied and available", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, T, 2}), want: workSucceeded, applied: true},
		{name: "conditions without generation", work: work(2, 2, c{fleetv1.WorkApplied, T, 0}, c{fleetv1.WorkAvailable, T, 0}), want: workSucceeded, applied: true},
		{name: "still progressing", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, T, 2}, c{fleetv1.WorkProgressing, T, 2}),
			want: workProgressing, applied: true},
		{name: "progressing and degraded is progressing", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkDegraded, T, 2}, c{fleetv1.WorkProgressing, T, 2}),
			want: workProgressing, applied: true},
		{name: "degraded, no longer progressing", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, T, 2},
			c{fleetv1.WorkDegraded, T, 2}, c{fleetv1.WorkProgressing, F, 2}), want: workFailed, applied: true},
		{name: "degraded for an older generation", work: work(2, 2, c{fleetv1.WorkApplied, T, 2}, c{fleetv1.WorkAvailable, T, 2}, c{fleetv1.WorkDegraded, T, 1}),
			want: workSucceeded, applied: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, applied, msg := outcomeOf(tc.work)
			if got != tc.want || applied != tc.applied {
				t.Errorf("outcomeOf = %d (applied %v, %q), want %d (applied %v)", got, applied, msg, tc.want, tc.applied)
			}
		})
	}
}
