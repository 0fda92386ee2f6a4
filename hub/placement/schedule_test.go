package placement

import (
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

var now = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

type clusterOpt func(*fleetv1.ManagedCluster)

func mkCluster(name string, opts ...clusterOpt) fleetv1.ManagedCluster {
	mc := fleetv1.ManagedCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{fleetv1.LabelClusterSet: "prod", "env": "prod"}},
		Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
	}
	for _, o := range opts {
		o(&mc)
	}
	return mc
}

func taint(key string, effect fleetv1.TaintEffect, ago time.Duration) clusterOpt {
	return func(mc *fleetv1.ManagedCluster) {
		mc.Spec.Taints = append(mc.Spec.Taints, fleetv1.Taint{Key: key, Effect: effect, TimeAdded: metav1.NewTime(now.Add(-ago))})
	}
}

func label(k, v string) clusterOpt {
	return func(mc *fleetv1.ManagedCluster) { mc.Labels[k] = v }
}

func claim(name, value string) clusterOpt {
	return func(mc *fleetv1.ManagedCluster) {
		mc.Status.ClusterClaims = append(mc.Status.ClusterClaims, fleetv1.ClusterClaim{Name: name, Value: value})
	}
}

type placementOpt func(*fleetv1.Placement)

func spreadOver(key, keyType string, maxSkew int32) placementOpt {
	return func(p *fleetv1.Placement) {
		p.Spec.SpreadPolicy.SpreadConstraints = append(p.Spec.SpreadPolicy.SpreadConstraints,
			fleetv1.SpreadConstraint{TopologyKey: key, TopologyKeyType: keyType, MaxSkew: maxSkew})
	}
}

func mkPlacement(n *int32, opts ...placementOpt) *fleetv1.Placement {
	p := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"prod"}, NumberOfClusters: n,
			Rescheduling: fleetv1.Rescheduling{Hysteresis: 10, MinInterval: metav1.Duration{Duration: time.Minute}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

// exactPromQL ranks by one PromQL score only.
func exactPromQL(hysteresis int32) placementOpt {
	return func(p *fleetv1.Placement) {
		p.Spec.PrioritizerPolicy = fleetv1.PrioritizerPolicy{Mode: ModeExact, Configurations: []fleetv1.PrioritizerConfig{
			{ScoreCoordinate: fleetv1.ScoreCoordinate{Type: ScorePromQL, PromQL: &fleetv1.PromQLScore{Query: "score"}}, Weight: 1}}}
		p.Spec.Rescheduling.Hysteresis = hysteresis
	}
}

func lastRescheduled(ago time.Duration) placementOpt {
	return func(p *fleetv1.Placement) { p.Status.LastRescheduleTime = &metav1.Time{Time: now.Add(-ago)} }
}

func decided(names ...string) map[string]fleetv1.ClusterDecision {
	out := map[string]fleetv1.ClusterDecision{}
	for _, n := range names {
		out[n] = fleetv1.ClusterDecision{ClusterName: n, Reason: ReasonSelected, Score: 7}
	}
	return out
}

func TestSchedule(t *testing.T) {
	three := []fleetv1.ManagedCluster{mkCluster("a"), mkCluster("b"), mkCluster("c")}
	sets := []fleetv1.ClusterSet{{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}}
	// Normalised over a, b, c: a 82, b 100, c -100 (b beats a by 18).
	close := map[int]map[string]float64{0: {"a": 50, "b": 55, "c": 0}}
	// a -100, b 100, c 0.
	far := map[int]map[string]float64{0: {"a": 0, "b": 100, "c": 50}}
	// Three zones; zone a has the three best scores.
	zoned := []fleetv1.ManagedCluster{
		mkCluster("a1", label("zone", "a")), mkCluster("a2", label("zone", "a")), mkCluster("a3", label("zone", "a")),
		mkCluster("b1", label("zone", "b")), mkCluster("b2", label("zone", "b")), mkCluster("c1", label("zone", "c")), mkCluster("c2", label("zone", "c")),
	}
	zonedScores := map[int]map[string]float64{0: {"a1": 100, "a2": 95, "a3": 90, "b1": 60, "b2": 10, "c1": 50, "c2": 0}}
	for _, tc := range []struct {
		name        string
		placement   *fleetv1.Placement
		clusters    []fleetv1.ManagedCluster
		current     map[string]fleetv1.ClusterDecision
		promQL      map[int]map[string]float64
		scoreErrors []string
		preds       []fleetv1.ClusterPredicate

		selected    []string
		removed     []string
		rescheduled bool
		held        bool
		requeue     time.Duration
		satisfied   bool
		message     string
	}{
		{name: "best N, ties broken by name", placement: mkPlacement(ptr.To[int32](2)), clusters: three,
			selected: []string{"a", "b"}, satisfied: true, message: "2 of 2 selected"},
		{name: "every qualifying cluster without numberOfClusters", placement: mkPlacement(nil), clusters: three,
			selected: []string{"a", "b", "c"}, satisfied: true, message: "3 of 3 selected"},
		{name: "none qualifies", placement: mkPlacement(nil), clusters: []fleetv1.ManagedCluster{mkCluster("a", taint("k", fleetv1.TaintNoSelect, 0))},
			message: "no cluster qualifies; 1 excluded by taint k"},
		{name: "exclusions explained", placement: mkPlacement(ptr.To[int32](2)),
			clusters: []fleetv1.ManagedCluster{
				mkCluster("a"),
				mkCluster("b", func(mc *fleetv1.ManagedCluster) { mc.Spec.Accepted = false }),
				mkCluster("c", func(mc *fleetv1.ManagedCluster) { mc.DeletionTimestamp = &metav1.Time{Time: now} }),
				mkCluster("d", label("env", "dev")),
				mkCluster("e", taint(fleetv1.TaintUnreachable, fleetv1.TaintNoSelect, time.Minute)),
				mkCluster("f", label(fleetv1.LabelClusterSet, "other")),
			},
			preds:    []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}},
			selected: []string{"a"},
			message:  "1 of 2 selected; 1 being deleted; 1 not accepted; 1 not matched by predicates; 1 excluded by taint fleetpulse.io/unreachable"},
		{name: "a NoSelect taint moves the decision at once, rate limit or not", placement: mkPlacement(ptr.To[int32](2), lastRescheduled(time.Second)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", taint(fleetv1.TaintUnreachable, fleetv1.TaintNoSelect, 0)), mkCluster("b"), mkCluster("c")},
			current:  decided("a", "b"), selected: []string{"b", "c"}, removed: []string{"a"}, satisfied: true,
			message: "2 of 2 selected; 1 excluded by taint fleetpulse.io/unreachable"},
		{name: "a deleted cluster is replaced", placement: mkPlacement(ptr.To[int32](2)), clusters: three,
			current: decided("a", "gone"), selected: []string{"a", "b"}, removed: []string{"gone"}, satisfied: true},
		{name: "a cluster that leaves the sets is replaced", placement: mkPlacement(ptr.To[int32](1)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", label(fleetv1.LabelClusterSet, "dev")), mkCluster("b")},
			current:  decided("a"), selected: []string{"b"}, removed: []string{"a"}, satisfied: true},
		{name: "NoSelectIfNew keeps a current cluster", placement: mkPlacement(ptr.To[int32](1)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a"), mkCluster("b", taint("drain", fleetv1.TaintNoSelectIfNew, 0))},
			current:  decided("b"), selected: []string{"b"}, satisfied: true},
		{name: "NoSelectIfNew keeps a new cluster out", placement: mkPlacement(ptr.To[int32](2)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a"), mkCluster("b", taint("drain", fleetv1.TaintNoSelectIfNew, 0))},
			selected: []string{"a"}, message: "1 of 2 selected; 1 excluded by taint drain"},
		{name: "PreferNoSelect is passed over while others qualify", placement: mkPlacement(ptr.To[int32](2)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", taint("busy", fleetv1.TaintPreferNoSelect, 0)), mkCluster("b"), mkCluster("c")},
			selected: []string{"b", "c"}, satisfied: true},
		{name: "PreferNoSelect is taken for want of others", placement: mkPlacement(ptr.To[int32](3)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", taint("busy", fleetv1.TaintPreferNoSelect, 0)), mkCluster("b"), mkCluster("c")},
			selected: []string{"a", "b", "c"}, satisfied: true},
		{name: "a current PreferNoSelect cluster gives way to an untainted one", placement: mkPlacement(ptr.To[int32](2), lastRescheduled(time.Second)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", taint("busy", fleetv1.TaintPreferNoSelect, 0)), mkCluster("b"), mkCluster("c")},
			current:  decided("a", "b"), selected: []string{"b", "c"}, removed: []string{"a"}, satisfied: true},
		{name: "a bounded toleration comes back when it runs out",
			placement: mkPlacement(ptr.To[int32](1), func(p *fleetv1.Placement) {
				p.Spec.Tolerations = []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists", TolerationSeconds: ptr.To[int64](60)}}
			}),
			clusters: []fleetv1.ManagedCluster{mkCluster("a", taint(fleetv1.TaintUnreachable, fleetv1.TaintNoSelect, 20*time.Second)), mkCluster("b")},
			current:  decided("a"), selected: []string{"a"}, requeue: 40 * time.Second, satisfied: true},
		{name: "fewer wanted drops the worst", placement: mkPlacement(ptr.To[int32](1), exactPromQL(10)), clusters: three,
			current: decided("a", "b"), promQL: far, selected: []string{"b"}, removed: []string{"a"}, satisfied: true},
		{name: "PromQL orders a fresh decision", placement: mkPlacement(ptr.To[int32](2), exactPromQL(10)), clusters: three,
			promQL: far, selected: []string{"b", "c"}, satisfied: true},
		{name: "a lead within the hysteresis does not move", placement: mkPlacement(ptr.To[int32](1), exactPromQL(20)), clusters: three,
			current: decided("a"), promQL: close, selected: []string{"a"}, satisfied: true},
		{name: "a lead beyond the hysteresis moves", placement: mkPlacement(ptr.To[int32](1), exactPromQL(10)), clusters: three,
			current: decided("a"), promQL: close, selected: []string{"b"}, removed: []string{"a"}, rescheduled: true, satisfied: true},
		{name: "not sooner than minInterval", placement: mkPlacement(ptr.To[int32](1), exactPromQL(10), lastRescheduled(20*time.Second)), clusters: three,
			current: decided("a"), promQL: far, selected: []string{"a"}, held: true, requeue: 40 * time.Second, satisfied: true,
			message: "1 of 1 selected; a better-scoring cluster waits for minInterval"},
		{name: "after minInterval", placement: mkPlacement(ptr.To[int32](1), exactPromQL(10), lastRescheduled(time.Minute)), clusters: three,
			current: decided("a"), promQL: far, selected: []string{"b"}, removed: []string{"a"}, rescheduled: true, satisfied: true},
		{name: "a failed query moves nothing on scores", placement: mkPlacement(ptr.To[int32](1), exactPromQL(10)), clusters: three,
			current: decided("a"), promQL: far, scoreErrors: []string{"PromQL prioritizer 0: store down"}, selected: []string{"a"}, satisfied: true,
			message: "1 of 1 selected; PromQL prioritizer 0: store down"},
		{name: "Steady adds 100 to the current clusters by default",
			placement: mkPlacement(ptr.To[int32](1), exactPromQL(10), func(p *fleetv1.Placement) { p.Spec.PrioritizerPolicy.Mode = ModeAdditive }),
			clusters:  three, current: decided("a"), promQL: map[int]map[string]float64{0: {"a": 50, "b": 100, "c": 0}},
			// a: PromQL 0 + Steady 100; b: 100 + 0. With mode Exact b would win by 100.
			selected: []string{"a"}, satisfied: true},
		{name: "a missing cluster set is reported", placement: mkPlacement(ptr.To[int32](1), func(p *fleetv1.Placement) { p.Spec.ClusterSets = []string{"prod", "dev"} }),
			clusters: three, selected: []string{"a"}, satisfied: true, message: "1 of 1 selected; cluster set dev does not exist"},
		{name: "spread: one per zone even when one zone has the top scores", placement: mkPlacement(ptr.To[int32](3), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 1)),
			clusters: zoned, promQL: zonedScores, selected: []string{"a1", "b1", "c1"}, satisfied: true, message: "3 of 3 selected"},
		{name: "spread: maxSkew 2 lets a zone hold two more", placement: mkPlacement(ptr.To[int32](3), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 2)),
			clusters: zoned, promQL: zonedScores, selected: []string{"a1", "a2", "b1"}, satisfied: true},
		{name: "spread: over a claim", placement: mkPlacement(ptr.To[int32](2), exactPromQL(10), spreadOver("region.fleetpulse.io", TopologyKeyClaim, 1)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a1", claim("region.fleetpulse.io", "eu/west")), mkCluster("a2", claim("region.fleetpulse.io", "eu/west")),
				mkCluster("b1", claim("region.fleetpulse.io", "us/east"))},
			promQL: zonedScores, selected: []string{"a1", "b1"}, satisfied: true},
		{name: "spread: a zone with all its clusters selected holds no one back", placement: mkPlacement(ptr.To[int32](4), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 1)),
			clusters: []fleetv1.ManagedCluster{mkCluster("a1", label("zone", "a")), mkCluster("b1", label("zone", "b")), mkCluster("b2", label("zone", "b")),
				mkCluster("b3", label("zone", "b")), mkCluster("b4", label("zone", "b"))},
			selected: []string{"a1", "b1", "b2", "b3"}, satisfied: true},
		{name: "spread: a cluster without the key is neither counted nor held back", placement: mkPlacement(ptr.To[int32](3), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 1)),
			clusters: append([]fleetv1.ManagedCluster{mkCluster("x")}, zoned[:4]...), promQL: map[int]map[string]float64{0: {"x": 100, "a1": 90, "a2": 80, "a3": 70, "b1": 0}},
			selected: []string{"a1", "b1", "x"}, satisfied: true},
		{name: "spread forces selected clusters out at once, rate limit or not",
			placement: mkPlacement(ptr.To[int32](3), exactPromQL(1000), spreadOver("zone", TopologyKeyLabel, 1), lastRescheduled(time.Second)),
			clusters:  zoned, promQL: zonedScores, current: decided("a1", "a2", "a3"),
			selected: []string{"a1", "b1", "c1"}, removed: []string{"a3", "a2"}, satisfied: true},
		{name: "spread keeps a selection that meets it, with Steady",
			placement: mkPlacement(ptr.To[int32](3), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 1), func(p *fleetv1.Placement) { p.Spec.PrioritizerPolicy.Mode = ModeAdditive }),
			clusters:  zoned, promQL: zonedScores, current: decided("a3", "b2", "c2"),
			selected: []string{"a3", "b2", "c2"}, satisfied: true},
		{name: "spread: scores move within a zone, not across it",
			placement: mkPlacement(ptr.To[int32](3), exactPromQL(10), spreadOver("zone", TopologyKeyLabel, 1)),
			clusters:  zoned, promQL: zonedScores, current: decided("a1", "b2", "c2"),
			// a2 and a3 beat b2 and c2 by far, but a second cluster in zone
			// a would break the spread; b1 and c1 beat them too.
			selected: []string{"a1", "b1", "c1"}, removed: []string{"b2", "c2"}, rescheduled: true, satisfied: true},
		{name: "spread: an invalid constraint is reported and ignored", placement: mkPlacement(ptr.To[int32](1), spreadOver("zone", "Annotation", 1)),
			clusters: three, selected: []string{"a"}, satisfied: true, message: `1 of 1 selected; spreadConstraints[0]: topologyKeyType "Annotation" is neither Label nor Claim`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			preds, err := compilePredicates(tc.preds)
			if err != nil {
				t.Fatal(err)
			}
			current := tc.current
			if current == nil {
				current = map[string]fleetv1.ClusterDecision{}
			}
			r := schedule(input{placement: tc.placement, clusters: tc.clusters, sets: sets, current: current, others: map[string]int{},
				promQL: tc.promQL, scoreErrors: tc.scoreErrors, now: now}, preds)
			var selected, removed []string
			for _, d := range r.selected {
				selected = append(selected, d.ClusterName)
			}
			for _, m := range r.removed {
				removed = append(removed, m.cluster)
			}
			if !slices.Equal(selected, tc.selected) {
				t.Errorf("selected %v, want %v (totals %v)", selected, tc.selected, r.totals)
			}
			if !slices.Equal(removed, tc.removed) {
				t.Errorf("removed %v, want %v", removed, tc.removed)
			}
			if r.rescheduled != tc.rescheduled || r.held != tc.held {
				t.Errorf("rescheduled %v held %v, want %v %v", r.rescheduled, r.held, tc.rescheduled, tc.held)
			}
			if r.requeueAfter != tc.requeue {
				t.Errorf("requeue after %s, want %s", r.requeueAfter, tc.requeue)
			}
			if r.satisfied() != tc.satisfied {
				t.Errorf("satisfied %v, want %v: %s", r.satisfied(), tc.satisfied, r.message())
			}
			if tc.message != "" && r.message() != tc.message {
				t.Errorf("message %q, want %q", r.message(), tc.message)
			}
			// Clusters kept keep the reason they were chosen for; their
			// score is the current one, or the recorded one when a PromQL
			// score failed.
			for _, d := range r.selected {
				cur, ok := current[d.ClusterName]
				if !ok {
					continue
				}
				want := cur
				if len(tc.scoreErrors) == 0 {
					want.Score = fleetv1.DecisionScore(r.totals[d.ClusterName])
				}
				if d != want {
					t.Errorf("kept decision %+v written as %+v, want %+v", cur, d, want)
				}
			}
		})
	}
}

func TestScheduleRecordsReasonsAndScores(t *testing.T) {
	p := mkPlacement(ptr.To[int32](1), exactPromQL(10))
	clusters := []fleetv1.ManagedCluster{mkCluster("a"), mkCluster("b"), mkCluster("c")}
	r := schedule(input{placement: p, clusters: clusters, current: decided("a"), sets: []fleetv1.ClusterSet{{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}},
		promQL: map[int]map[string]float64{0: {"a": 0, "b": 100, "c": 50}}, now: now}, nil)
	if len(r.selected) != 1 || r.selected[0] != (fleetv1.ClusterDecision{ClusterName: "b", Reason: ReasonRescheduled, Score: 100}) {
		t.Fatalf("selected %+v, want b rescheduled with score 100", r.selected)
	}
	if len(r.swaps) != 1 || r.swaps[0][0].cluster != "a" || r.swaps[0][0].score != -100 || r.swaps[0][1].cluster != "b" {
		t.Errorf("swaps %+v, want a (-100) for b", r.swaps)
	}
	if !strings.Contains(r.removed[0].why, "b scores 100") {
		t.Errorf("removal explained as %q", r.removed[0].why)
	}
}

// TestScheduleKeptClusterScoreFollows checks that a kept cluster's decision
// shows its current score (here one recorded before PromQL scores existed),
// keeping its reason, and keeps the recorded score while a query fails.
func TestScheduleKeptClusterScoreFollows(t *testing.T) {
	p := mkPlacement(ptr.To[int32](1), exactPromQL(50))
	clusters := []fleetv1.ManagedCluster{mkCluster("a"), mkCluster("b"), mkCluster("c")}
	current := map[string]fleetv1.ClusterDecision{"a": {ClusterName: "a", Reason: ReasonFallback}}
	in := input{placement: p, clusters: clusters, current: current, sets: []fleetv1.ClusterSet{{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}},
		promQL: map[int]map[string]float64{0: {"a": 50, "b": 55, "c": 0}}, now: now}
	r := schedule(in, nil)
	if want := (fleetv1.ClusterDecision{ClusterName: "a", Reason: ReasonFallback, Score: 82}); len(r.selected) != 1 || r.selected[0] != want {
		t.Errorf("selected %+v, want %+v", r.selected, want)
	}
	in.scoreErrors = []string{"PromQL prioritizer 0: store down"}
	r = schedule(in, nil)
	if len(r.selected) != 1 || r.selected[0] != current["a"] {
		t.Errorf("with a failed query selected %+v, want %+v as recorded", r.selected, current["a"])
	}
}
