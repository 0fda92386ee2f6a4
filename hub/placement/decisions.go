package placement

import (
	"context"
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// maxPerDecision is how many clusters one PlacementDecision holds.
const maxPerDecision = 100

// DecisionName names a placement's i-th PlacementDecision (from 1).
func DecisionName(placement string, i int) string {
	return fmt.Sprintf("%s-decision-%d", placement, i)
}

// desiredDecisions splits a decision (sorted by name) into decision groups
// of spec.decisionStrategy.clustersPerDecisionGroup clusters (one group when
// unset) and each group into PlacementDecisions of at most 100. An empty
// decision is one empty PlacementDecision, so that readers find the object.
func desiredDecisions(p *fleetv1.Placement, selected []fleetv1.ClusterDecision) ([]fleetv1.PlacementDecision, []fleetv1.DecisionGroupStatus) {
	per := int(p.Spec.DecisionStrategy.ClustersPerDecisionGroup)
	if per <= 0 || per > len(selected) {
		per = len(selected)
	}
	var groups [][]fleetv1.ClusterDecision
	for start := 0; start < len(selected); start += per {
		groups = append(groups, selected[start:min(start+per, len(selected))])
	}
	if len(groups) == 0 {
		groups = [][]fleetv1.ClusterDecision{nil}
	}
	var out []fleetv1.PlacementDecision
	var status []fleetv1.DecisionGroupStatus
	for g, members := range groups {
		gs := fleetv1.DecisionGroupStatus{DecisionGroupIndex: int32(g), ClustersCount: int32(len(members)), Decisions: []string{}}
		for start := 0; start == 0 || start < len(members); start += maxPerDecision {
			i := len(out) + 1
			d := fleetv1.PlacementDecision{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: p.Namespace,
					Name:      DecisionName(p.Name, i),
					Labels:    decisionLabels(p.Name, g, i),
					OwnerReferences: []metav1.OwnerReference{{
						APIVersion: fleetv1.GroupVersion.String(), Kind: "Placement", Name: p.Name, UID: p.UID,
						Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
					}},
				},
			}
			if len(members) > 0 {
				d.Status.Decisions = append([]fleetv1.ClusterDecision(nil), members[start:min(start+maxPerDecision, len(members))]...)
			}
			out = append(out, d)
			gs.Decisions = append(gs.Decisions, d.Name)
		}
		status = append(status, gs)
	}
	return out, status
}

// decisionLabels are a PlacementDecision's labels: the placement's name and
// decision group, and KEP-5313's placement key and (0-based) decision index.
func decisionLabels(placement string, group, i int) map[string]string {
	return map[string]string{
		fleetv1.LabelPlacement:          placement,
		fleetv1.LabelDecisionGroupIndex: strconv.Itoa(group),
		fleetv1.LabelSIGMCPlacementKey:  placement,
		fleetv1.LabelSIGMCDecisionIndex: strconv.Itoa(i - 1),
	}
}

// writeDecisions makes the placement's PlacementDecisions what desired says,
// writing only what differs: it creates missing ones, fixes labels and
// owner, updates the decisions, and deletes the ones no longer needed.
func writeDecisions(ctx context.Context, c client.Client, desired, existing []fleetv1.PlacementDecision) error {
	have := make(map[string]*fleetv1.PlacementDecision, len(existing))
	for i := range existing {
		have[existing[i].Name] = &existing[i]
	}
	for i := range desired {
		want := &desired[i]
		cur, ok := have[want.Name]
		delete(have, want.Name)
		if !ok {
			cur = want.DeepCopy()
			cur.Status = fleetv1.PlacementDecisionStatus{}
			if err := c.Create(ctx, cur); err != nil {
				return fmt.Errorf("create placement decision %s/%s: %w", want.Namespace, want.Name, err)
			}
		} else if !hasLabels(cur.Labels, want.Labels) || !equality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences) {
			if cur.Labels == nil {
				cur.Labels = map[string]string{}
			}
			for k, v := range want.Labels {
				cur.Labels[k] = v
			}
			cur.OwnerReferences = want.OwnerReferences
			if err := c.Update(ctx, cur); err != nil {
				return fmt.Errorf("update placement decision %s/%s: %w", want.Namespace, want.Name, err)
			}
		}
		if sameDecisions(cur.Status.Decisions, want.Status.Decisions) {
			continue
		}
		cur.Status.Decisions = want.Status.Decisions
		if err := c.Status().Update(ctx, cur); err != nil {
			return fmt.Errorf("update placement decision %s/%s status: %w", want.Namespace, want.Name, err)
		}
	}
	for _, name := range sortedKeys(have) {
		if err := c.Delete(ctx, have[name]); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete placement decision %s/%s: %w", have[name].Namespace, name, err)
		}
	}
	return nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func sameDecisions(a, b []fleetv1.ClusterDecision) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
