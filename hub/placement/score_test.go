package placement

import (
	"context"
	"errors"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestNormalise(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	for _, tc := range []struct {
		name      string
		values    map[string]float64
		ascending bool
		want      map[string]int64
	}{
		{name: "spread", values: map[string]float64{"a": 10, "b": 20, "c": 15}, want: map[string]int64{"a": -100, "b": 100, "c": 0, "d": 0}},
		{name: "ascending flips", values: map[string]float64{"a": 10, "b": 20, "c": 15}, ascending: true, want: map[string]int64{"a": 100, "b": -100, "c": 0, "d": 0}},
		{name: "all equal", values: map[string]float64{"a": 5, "b": 5, "c": 5, "d": 5}, want: map[string]int64{"a": 0, "b": 0, "c": 0, "d": 0}},
		{name: "nothing", values: nil, want: map[string]int64{"a": 0, "b": 0, "c": 0, "d": 0}},
		{name: "rounded", values: map[string]float64{"a": 0, "b": 3, "c": 1}, want: map[string]int64{"a": -100, "b": 100, "c": -33, "d": 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := normalise(names, tc.values, tc.ascending); !maps.Equal(got, tc.want) {
				t.Errorf("normalise = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPrioritizers(t *testing.T) {
	promQL := fleetv1.PrioritizerConfig{ScoreCoordinate: fleetv1.ScoreCoordinate{Type: ScorePromQL, PromQL: &fleetv1.PromQLScore{Query: "up"}}, Weight: 3}
	steady0 := fleetv1.PrioritizerConfig{ScoreCoordinate: fleetv1.ScoreCoordinate{Type: ScoreBuiltIn, BuiltIn: Steady}, Weight: 0}
	for _, tc := range []struct {
		name     string
		pol      fleetv1.PrioritizerPolicy
		want     []string
		problems int
	}{
		{name: "defaults", want: []string{Balance, Steady}},
		{name: "additive", pol: fleetv1.PrioritizerPolicy{Mode: ModeAdditive, Configurations: []fleetv1.PrioritizerConfig{promQL}},
			want: []string{`PromQL "up"`, Balance, Steady}},
		{name: "a configured default replaces it", pol: fleetv1.PrioritizerPolicy{Configurations: []fleetv1.PrioritizerConfig{steady0}},
			want: []string{Steady, Balance}},
		{name: "exact", pol: fleetv1.PrioritizerPolicy{Mode: ModeExact, Configurations: []fleetv1.PrioritizerConfig{promQL}}, want: []string{`PromQL "up"`}},
		{name: "unknown built-in", pol: fleetv1.PrioritizerPolicy{Mode: ModeExact, Configurations: []fleetv1.PrioritizerConfig{
			{ScoreCoordinate: fleetv1.ScoreCoordinate{Type: ScoreBuiltIn, BuiltIn: "Luck"}}}}, problems: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, problems := prioritizers(tc.pol)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if len(got) != len(tc.want) || len(problems) != tc.problems {
				t.Fatalf("prioritizers = %v %v, want %v and %d problems", got, problems, tc.want, tc.problems)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("prioritizers = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestScore(t *testing.T) {
	alloc := func(cpu, mem string) fleetv1.ManagedClusterStatus {
		return fleetv1.ManagedClusterStatus{Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}}
	}
	clusters := map[string]*fleetv1.ManagedCluster{
		"a": {ObjectMeta: metav1.ObjectMeta{Name: "a"}, Status: alloc("8", "32Gi")},
		"b": {ObjectMeta: metav1.ObjectMeta{Name: "b"}, Status: alloc("16", "16Gi")},
		"c": {ObjectMeta: metav1.ObjectMeta{Name: "c"}},
	}
	ps := []prioritizer{
		{builtIn: Balance, weight: 1, index: -1},
		{builtIn: Steady, weight: 1, index: -1},
		{builtIn: ResourceAllocatableCPU, weight: 2, index: 0},
		{builtIn: ResourceAllocatableMemory, weight: 1, index: 1},
		{promQL: &fleetv1.PromQLScore{Query: "x", Ascending: true}, weight: -1, index: 2},
	}
	got := score(ps, clusters, map[string]bool{"c": true}, map[string]int{"a": 3, "b": 1}, map[int]map[string]float64{2: {"a": 0.5, "b": 0.1}})
	// Balance over a=3, b=1, c=0 others' decisions: a -100, b 33, c 100.
	// Steady: c 100. CPU: a -100, b 100, c 0 (missing). Memory: a 100, b
	// -100, c 0. PromQL ascending: a -100, b 100, c 0, at weight -1.
	want := map[string]int64{
		"a": -100 + 0 + 2*-100 + 100 + 100,
		"b": 33 + 0 + 2*100 - 100 - 100,
		"c": 100 + 100 + 0 + 0 + 0,
	}
	if !maps.Equal(got.total, want) {
		t.Errorf("totals = %v, want %v (by prioritizer %v)", got.total, want, got.by)
	}
}

func TestWithStaleness(t *testing.T) {
	for _, tc := range []struct {
		query     string
		staleness time.Duration
		want      string
	}{
		{query: `up`, staleness: 0, want: `up`},
		{query: `up`, staleness: time.Minute, want: `last_over_time(up[1m])`},
		{query: `max by (cluster) (cpu{job="x"} offset 1m)`, staleness: 2 * time.Minute,
			want: `max by (cluster) (last_over_time(cpu{job="x"}[2m] offset 1m))`},
		{query: `sum by (cluster) (rate(req_total[5m])) / on (cluster) capacity`, staleness: time.Minute,
			want: `sum by (cluster) (rate(req_total[5m])) / on (cluster) last_over_time(capacity[1m])`},
		{query: `time() - timestamp(hb)`, staleness: time.Minute, want: `time() - timestamp(hb)`},
		{query: `-(a)`, staleness: time.Minute, want: `-(last_over_time(a[1m]))`},
		{query: `topk(1, a) > 0`, staleness: time.Minute, want: `topk(1, last_over_time(a[1m])) > 0`},
	} {
		t.Run(tc.query, func(t *testing.T) {
			got, err := withStaleness(tc.query, tc.staleness)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("withStaleness = %s, want %s", got, tc.want)
			}
		})
	}
	if _, err := withStaleness(`sum(`, time.Minute); err == nil {
		t.Error("a broken query parsed")
	}
}

func TestQueryScores(t *testing.T) {
	var asked string
	query := func(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
		asked = expr
		return promql.Vector{
			{Metric: labels.FromStrings("cluster", "a"), F: 1},
			{Metric: labels.FromStrings("cluster", "a"), F: 3},
			{Metric: labels.FromStrings("cluster", "b"), F: 5},
			{Metric: labels.FromStrings("cluster", "c"), F: math.NaN()},
			{Metric: labels.FromStrings("job", "x"), F: 7},
		}, nil
	}
	got, err := queryScores(context.Background(), query, &fleetv1.PromQLScore{Query: "free", Staleness: metav1.Duration{Duration: 5 * time.Minute}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]float64{"a": 2, "b": 5}; !maps.Equal(got, want) {
		t.Errorf("queryScores = %v, want %v", got, want)
	}
	if asked != "last_over_time(free[5m])" {
		t.Errorf("query asked = %q", asked)
	}
	failing := func(context.Context, string, time.Time) (promql.Vector, error) { return nil, errors.New("store down") }
	if _, err := queryScores(context.Background(), failing, &fleetv1.PromQLScore{Query: "free"}, time.Now()); err == nil {
		t.Error("a failing query gave scores")
	}
}
