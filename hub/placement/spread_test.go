package placement

import (
	"slices"
	"testing"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestSpreadExcess(t *testing.T) {
	cands := map[string]*fleetv1.ManagedCluster{}
	for _, mc := range []fleetv1.ManagedCluster{
		mkCluster("a1", label("zone", "a")), mkCluster("a2", label("zone", "a")), mkCluster("a3", label("zone", "a")),
		mkCluster("b1", label("zone", "b")), mkCluster("c1", label("zone", "c")), mkCluster("c2", label("zone", "c")),
		mkCluster("x"),
	} {
		cands[mc.Name] = &mc
	}
	for _, tc := range []struct {
		name     string
		maxSkew  int32
		selected []string
		excess   int
		unmet    []string
	}{
		{name: "nothing selected", maxSkew: 1},
		{name: "even", maxSkew: 1, selected: []string{"a1", "b1", "c1"}},
		{name: "a full zone does not hold the others back", maxSkew: 1, selected: []string{"a1", "a2", "b1", "c1", "c2"}},
		{name: "without the key, not counted", maxSkew: 1, selected: []string{"a1", "x"}},
		{name: "two over an open zone", maxSkew: 1, selected: []string{"a1", "a2", "a3"}, excess: 2,
			unmet: []string{"spread over label zone not met (maxSkew 1): a=3 b=0 c=0"}},
		{name: "within maxSkew 2", maxSkew: 2, selected: []string{"a1", "a2", "b1"}},
		{name: "maxSkew 0 counts as 1", maxSkew: 0, selected: []string{"a1", "a2"}, excess: 1,
			unmet: []string{"spread over label zone not met (maxSkew 1): a=2 b=0 c=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, problems := spreadRules([]fleetv1.SpreadConstraint{{TopologyKey: "zone", TopologyKeyType: TopologyKeyLabel, MaxSkew: tc.maxSkew}}, cands)
			if len(problems) > 0 {
				t.Fatal(problems)
			}
			for _, n := range tc.selected {
				sp.add(n, 1)
			}
			if got := sp.excess(); got != tc.excess {
				t.Errorf("excess %d, want %d", got, tc.excess)
			}
			if got := sp.unmet(); !slices.Equal(got, tc.unmet) {
				t.Errorf("unmet %q, want %q", got, tc.unmet)
			}
		})
	}
}
