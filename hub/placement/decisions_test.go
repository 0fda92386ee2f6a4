package placement

import (
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestDesiredDecisions(t *testing.T) {
	names := func(n int) []fleetv1.ClusterDecision {
		out := make([]fleetv1.ClusterDecision, n)
		for i := range out {
			out[i] = fleetv1.ClusterDecision{ClusterName: fmt.Sprintf("c%03d", i)}
		}
		return out
	}
	type want struct {
		name, group, index string
		clusters           int
	}
	for _, tc := range []struct {
		name     string
		perGroup int32
		selected int
		want     []want
		groups   []fleetv1.DecisionGroupStatus
	}{
		{name: "empty is one empty decision", want: []want{{"web-decision-1", "0", "0", 0}},
			groups: []fleetv1.DecisionGroupStatus{{DecisionGroupIndex: 0, Decisions: []string{"web-decision-1"}, ClustersCount: 0}}},
		{name: "one group", selected: 3, want: []want{{"web-decision-1", "0", "0", 3}},
			groups: []fleetv1.DecisionGroupStatus{{DecisionGroupIndex: 0, Decisions: []string{"web-decision-1"}, ClustersCount: 3}}},
		{name: "100 per decision", selected: 250, want: []want{{"web-decision-1", "0", "0", 100}, {"web-decision-2", "0", "1", 100}, {"web-decision-3", "0", "2", 50}},
			groups: []fleetv1.DecisionGroupStatus{{DecisionGroupIndex: 0, Decisions: []string{"web-decision-1", "web-decision-2", "web-decision-3"}, ClustersCount: 250}}},
		{name: "groups", perGroup: 2, selected: 5, want: []want{{"web-decision-1", "0", "0", 2}, {"web-decision-2", "1", "1", 2}, {"web-decision-3", "2", "2", 1}},
			groups: []fleetv1.DecisionGroupStatus{
				{DecisionGroupIndex: 0, Decisions: []string{"web-decision-1"}, ClustersCount: 2},
				{DecisionGroupIndex: 1, Decisions: []string{"web-decision-2"}, ClustersCount: 2},
				{DecisionGroupIndex: 2, Decisions: []string{"web-decision-3"}, ClustersCount: 1}}},
		{name: "a group larger than the decision", perGroup: 10, selected: 3, want: []want{{"web-decision-1", "0", "0", 3}},
			groups: []fleetv1.DecisionGroupStatus{{DecisionGroupIndex: 0, Decisions: []string{"web-decision-1"}, ClustersCount: 3}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web", UID: "u1"},
				Spec: fleetv1.PlacementSpec{DecisionStrategy: fleetv1.DecisionStrategy{ClustersPerDecisionGroup: tc.perGroup}}}
			sel := names(tc.selected)
			ds, groups := desiredDecisions(p, sel)
			if len(ds) != len(tc.want) {
				t.Fatalf("%d decisions, want %d", len(ds), len(tc.want))
			}
			var all []fleetv1.ClusterDecision
			for i, d := range ds {
				w := tc.want[i]
				if d.Name != w.name || d.Namespace != "apps" || len(d.Status.Decisions) != w.clusters {
					t.Errorf("decision %d: %s/%s with %d clusters, want %s with %d", i, d.Namespace, d.Name, len(d.Status.Decisions), w.name, w.clusters)
				}
				wantLabels := map[string]string{fleetv1.LabelPlacement: "web", fleetv1.LabelDecisionGroupIndex: w.group,
					fleetv1.LabelSIGMCPlacementKey: "web", fleetv1.LabelSIGMCDecisionIndex: w.index}
				if !hasLabels(d.Labels, wantLabels) || len(d.Labels) != len(wantLabels) {
					t.Errorf("decision %s labels %v, want %v", d.Name, d.Labels, wantLabels)
				}
				if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].UID != "u1" || d.OwnerReferences[0].Kind != "Placement" || !*d.OwnerReferences[0].Controller {
					t.Errorf("decision %s owners %+v, want the placement", d.Name, d.OwnerReferences)
				}
				all = append(all, d.Status.Decisions...)
			}
			if !slices.Equal(all, sel) {
				t.Errorf("decisions hold %v, want %v in order", all, sel)
			}
			if fmt.Sprint(groups) != fmt.Sprint(tc.groups) {
				t.Errorf("groups %+v, want %+v", groups, tc.groups)
			}
		})
	}
}
