package workset

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// workOutcome is how a cluster's work is doing with the revision it has,
// as Open Cluster Management's ManifestWorkReplicaSet decides it.
type workOutcome int

const (
	workProgressing workOutcome = iota
	workSucceeded
	workFailed
)

// workObs is what a pass sees of one decided cluster's work.
type workObs struct {
	exists   bool
	deleting bool
	hash     string
	// revision is the revision its template is (0: none kept); current says
	// it is the rollout's.
	revision int64
	current  bool
	// applied: the agent applied this generation.
	applied bool
	outcome workOutcome
	message string
}

// observe reads a work (nil: none) whose template hashes to hash.
func observe(w *fleetv1.ManifestWork, hash string, rs revisionSet, rolling *fleetv1.ManifestWorkSetRevision) workObs {
	if w == nil {
		return workObs{}
	}
	o := workObs{exists: true, deleting: w.DeletionTimestamp != nil, hash: hash, current: hash == rolling.Spec.TemplateHash}
	if rev := rs.byHash(hash); rev != nil {
		o.revision = rev.Spec.Revision
	}
	o.outcome, o.applied, o.message = outcomeOf(w)
	return o
}

// outcomeOf: a work whose agent has not reported this generation is
// progressing; Applied and Available for the generation is success unless
// Progressing is True (still rolling) or Degraded is True (failed); Degraded
// without Progressing is failure.
func outcomeOf(w *fleetv1.ManifestWork) (workOutcome, bool, string) {
	gen := w.Generation
	cond := func(typ string) *metav1.Condition {
		c := meta.FindStatusCondition(w.Status.Conditions, typ)
		if c == nil || (c.ObservedGeneration != 0 && c.ObservedGeneration != gen) {
			return nil
		}
		return c
	}
	is := func(typ string, s metav1.ConditionStatus) bool { c := cond(typ); return c != nil && c.Status == s }
	if w.Status.ObservedGeneration != gen {
		return workProgressing, false, fmt.Sprintf("the agent has not applied generation %d yet", gen)
	}
	applied := is(fleetv1.WorkApplied, metav1.ConditionTrue)
	switch {
	case is(fleetv1.WorkProgressing, metav1.ConditionTrue):
		return workProgressing, applied, message(cond(fleetv1.WorkProgressing))
	case is(fleetv1.WorkDegraded, metav1.ConditionTrue):
		return workFailed, applied, "Degraded: " + message(cond(fleetv1.WorkDegraded))
	case applied && is(fleetv1.WorkAvailable, metav1.ConditionTrue):
		return workSucceeded, true, fmt.Sprintf("Applied and Available for generation %d", gen)
	default:
		return workProgressing, applied, "not yet Applied and Available"
	}
}

func message(c *metav1.Condition) string {
	if c == nil {
		return ""
	}
	if c.Message == "" {
		return c.Reason
	}
	return c.Reason + ": " + c.Message
}

// availableForGeneration: the agent has applied this generation of the
// work and reports it Available.
func availableForGeneration(w *fleetv1.ManifestWork) bool {
	if w.Status.ObservedGeneration != w.Generation {
		return false
	}
	c := meta.FindStatusCondition(w.Status.Conditions, fleetv1.WorkAvailable)
	return c != nil && c.Status == metav1.ConditionTrue && (c.ObservedGeneration == 0 || c.ObservedGeneration == w.Generation)
}
