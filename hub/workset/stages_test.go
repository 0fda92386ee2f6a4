package workset

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func pct(s string) *intstr.IntOrString { v := intstr.FromString(s); return &v }
func cnt(n int) *intstr.IntOrString    { v := intstr.FromInt32(int32(n)); return &v }

// tgts makes targets named c0..c<n-1>, perGroup to a decision group.
func tgts(n, perGroup int) []target {
	out := make([]target, n)
	for i := range out {
		out[i] = target{cluster: fmt.Sprintf("c%d", i), group: i / perGroup}
	}
	return out
}

func TestBuildStages(t *testing.T) {
	for _, tc := range []struct {
		name string
		refs []refPlan
		want string
	}{
		{name: "All is one stage", refs: []refPlan{{name: "p", targets: tgts(3, 3)}}, want: "[p/all:[c0 c1 c2]]"},
		{name: "Progressive in batches of maxConcurrency", refs: []refPlan{{name: "p", targets: tgts(5, 5),
			strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: cnt(2)}}},
			want: "[p/batch-0:[c0 c1] p/batch-1:[c2 c3] p/batch-2:[c4]]"},
		{name: "Progressive defaults to one at a time", refs: []refPlan{{name: "p", targets: tgts(2, 2),
			strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive}}}, want: "[p/batch-0:[c0] p/batch-1:[c1]]"},
		{name: "Progressive by percentage rounds up", refs: []refPlan{{name: "p", targets: tgts(5, 5),
			strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: pct("30%")}}},
			want: "[p/batch-0:[c0 c1] p/batch-1:[c2 c3] p/batch-2:[c4]]"},
		{name: "ProgressivePerGroup, mandatory group first", refs: []refPlan{{name: "p", targets: tgts(6, 2),
			strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup, MandatoryDecisionGroups: []fleetv1.MandatoryDecisionGroup{{GroupIndex: 2}}}}},
			want: "[p/mandatory-2*:[c4 c5] p/group-0:[c0 c1] p/group-1:[c2 c3]]"},
		{name: "Progressive after a mandatory group", refs: []refPlan{{name: "p", targets: tgts(5, 2),
			strategy: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxConcurrency: cnt(2), MandatoryDecisionGroups: []fleetv1.MandatoryDecisionGroup{{GroupIndex: 0}, {GroupIndex: 9}}}}},
			want: "[p/mandatory-0*:[c0 c1] p/batch-1:[c2 c3] p/batch-2:[c4]]"},
		{name: "placements one after the other", refs: []refPlan{{name: "canary", targets: tgts(1, 1)},
			{name: "rest", targets: []target{{"d0", 0}, {"d1", 1}}, strategy: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup}}},
			want: "[canary/all:[c0] rest/group-0:[d0] rest/group-1:[d1]]"},
		{name: "a placement without clusters has no stage", refs: []refPlan{{name: "none"}, {name: "p", targets: tgts(1, 1)}}, want: "[p/all:[c0]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range buildStages(tc.refs) {
				m := ""
				if s.mandatory {
					m = "*"
				}
				got = append(got, fmt.Sprintf("%s%s:%v", s.name, m, s.clusters))
			}
			if fmt.Sprint(got) != tc.want {
				t.Errorf("stages %v, want %s", got, tc.want)
			}
		})
	}
}

func TestFailureBudget(t *testing.T) {
	for _, tc := range []struct {
		name            string
		s               fleetv1.RolloutStrategy
		mandatory       bool
		stage, ref, out int
	}{
		{name: "default none", s: fleetv1.RolloutStrategy{Type: RolloutProgressive}, stage: 5, ref: 20, out: 0},
		{name: "Progressive counts over the placement", s: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxFailures: pct("10%")}, stage: 5, ref: 20, out: 2},
		{name: "ProgressivePerGroup counts over the group", s: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup, MaxFailures: pct("10%")}, stage: 5, ref: 20, out: 1},
		{name: "a count", s: fleetv1.RolloutStrategy{Type: RolloutProgressivePerGroup, MaxFailures: cnt(3)}, stage: 5, ref: 20, out: 3},
		{name: "mandatory groups tolerate none", s: fleetv1.RolloutStrategy{Type: RolloutProgressive, MaxFailures: pct("50%")}, mandatory: true, stage: 5, ref: 20, out: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := failureBudget(tc.s, tc.mandatory, tc.stage, tc.ref); got != tc.out {
				t.Errorf("failureBudget = %d, want %d", got, tc.out)
			}
		})
	}
	for _, bad := range []*intstr.IntOrString{pct("x%"), pct("120%"), pct("5"), cnt(-1)} {
		if validSize("maxFailures", bad) == nil {
			t.Errorf("validSize(%v) passed", bad)
		}
	}
	for _, good := range []*intstr.IntOrString{nil, pct("0%"), pct("100%"), pct("12.5%"), cnt(0), cnt(7)} {
		if err := validSize("maxFailures", good); err != nil {
			t.Errorf("validSize(%v): %v", good, err)
		}
	}
}
