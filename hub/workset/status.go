package workset

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Condition types and reasons of a ManifestWorkSet.
const (
	ConditionPlacementVerified = "PlacementVerified"
	ConditionProgressing       = "Progressing"
	ConditionAvailable         = "Available"

	ReasonAsExpected        = "AsExpected"
	ReasonPlacementNotFound = "PlacementNotFound"
	ReasonNoPlacement       = "NoPlacement"
	ReasonRollingOut        = "RollingOut"
	ReasonCompleted         = "Completed"
	ReasonWorkConflict      = "WorkConflict"
	ReasonNoClusters        = "NoClusters"
	ReasonAllAvailable      = "AllAvailable"
	ReasonNotAllAvailable   = "NotAllAvailable"
)

// summarise counts the works by their conditions.
func summarise(works []*fleetv1.ManifestWork) fleetv1.WorkSummary {
	var s fleetv1.WorkSummary
	for _, w := range works {
		s.Total++
		if meta.IsStatusConditionTrue(w.Status.Conditions, fleetv1.WorkApplied) {
			s.Applied++
		}
		if meta.IsStatusConditionTrue(w.Status.Conditions, fleetv1.WorkAvailable) {
			s.Available++
		}
		if meta.IsStatusConditionTrue(w.Status.Conditions, fleetv1.WorkDegraded) {
			s.Degraded++
		}
	}
	return s
}

// countRevisions counts the works by the revision they run (running: by
// cluster; a cluster missing from it runs no kept revision, counted as 0),
// newest first.
func countRevisions(works []*fleetv1.ManifestWork, running map[string]int64) []fleetv1.RevisionClusters {
	by := map[int64]*fleetv1.RevisionClusters{}
	for _, w := range works {
		n := running[w.Namespace]
		c := by[n]
		if c == nil {
			c = &fleetv1.RevisionClusters{Revision: n}
			by[n] = c
		}
		c.Clusters++
		if availableForGeneration(w) {
			c.Available++
		}
	}
	out := make([]fleetv1.RevisionClusters, 0, len(by))
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Revision > out[j].Revision })
	return out
}

// observation is what a pass saw and did, for the conditions.
type observation struct {
	refs            int
	missingRefs     []string
	decided         int
	conflicts       []string
	missingNS       []string
	summary         fleetv1.WorkSummary
	placementDetail []string
	rollout         *fleetv1.RolloutStatus
}

// conditions derives PlacementVerified, Progressing and Available.
func conditions(o observation, generation int64) []metav1.Condition {
	verified := metav1.Condition{Type: ConditionPlacementVerified, Status: metav1.ConditionTrue, Reason: ReasonAsExpected,
		Message: strings.Join(o.placementDetail, "; ")}
	switch {
	case o.refs == 0:
		verified.Status, verified.Reason, verified.Message = metav1.ConditionFalse, ReasonNoPlacement, "no placementRefs"
	case len(o.missingRefs) > 0:
		verified.Status, verified.Reason = metav1.ConditionFalse, ReasonPlacementNotFound
		verified.Message = "placement " + strings.Join(o.missingRefs, ", ") + " not found"
	}

	progressing := metav1.Condition{Type: ConditionProgressing, Status: metav1.ConditionTrue, Reason: ReasonRollingOut}
	ro := o.rollout
	switch {
	case len(o.conflicts) > 0:
		progressing.Reason = ReasonWorkConflict
		progressing.Message = "a ManifestWork of this name that the set does not own is in the way in " + strings.Join(o.conflicts, ", ")
	case o.decided == 0:
		progressing.Status, progressing.Reason, progressing.Message = metav1.ConditionFalse, ReasonNoClusters, "no cluster is decided"
	case ro == nil:
	case ro.Phase == fleetv1.RolloutSucceeded:
		progressing.Status, progressing.Reason = metav1.ConditionFalse, ReasonCompleted
		progressing.Message = fmt.Sprintf("revision %d rolled out", ro.Revision)
	case ro.Phase == fleetv1.RolloutHalted || ro.Phase == fleetv1.RolloutRolledBack:
		progressing.Status, progressing.Reason = metav1.ConditionFalse, string(ro.Phase)
		progressing.Message = fmt.Sprintf("revision %d: %s", ro.Revision, ro.Message)
	default:
		if ro.Phase != fleetv1.RolloutProgressing {
			progressing.Reason = ro.Reason
		}
		progressing.Message = fmt.Sprintf("revision %d: %s", ro.Revision, ro.Message)
	}
	if len(o.missingNS) > 0 {
		progressing.Message += "; no namespace yet for cluster " + strings.Join(o.missingNS, ", ")
	}

	available := metav1.Condition{Type: ConditionAvailable, Status: metav1.ConditionFalse, Reason: ReasonNotAllAvailable}
	available.Message = fmt.Sprintf("%d of %d works available", o.summary.Available, o.decided)
	if o.summary.Degraded > 0 {
		available.Message += fmt.Sprintf(", %d degraded", o.summary.Degraded)
	}
	switch {
	case o.decided == 0:
		available.Reason, available.Message = ReasonNoClusters, "no cluster is decided"
	case int(o.summary.Available) == o.decided && int(o.summary.Total) == o.decided:
		available.Status, available.Reason = metav1.ConditionTrue, ReasonAllAvailable
	}
	out := []metav1.Condition{verified, progressing, available}
	for i := range out {
		out[i].ObservedGeneration = generation
	}
	return out
}
