package placement

import (
	"context"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/query"
)

// Built-in prioritizers.
const (
	Balance                   = "Balance"
	Steady                    = "Steady"
	ResourceAllocatableCPU    = "ResourceAllocatableCPU"
	ResourceAllocatableMemory = "ResourceAllocatableMemory"
)

// Score coordinate types and prioritizer modes.
const (
	ScoreBuiltIn  = "BuiltIn"
	ScorePromQL   = "PromQL"
	ModeAdditive  = "Additive"
	ModeExact     = "Exact"
	maxScore      = 100
	clusterLabel  = "cluster"
	defaultWeight = 1
)

// prioritizer is one weighted score source of a placement.
type prioritizer struct {
	builtIn string
	promQL  *fleetv1.PromQLScore
	weight  int64
	// index is the position in spec.prioritizerPolicy.configurations, or -1
	// for a default of mode Additive.
	index int
}

func (p prioritizer) String() string {
	if p.promQL != nil {
		return fmt.Sprintf("PromQL %q", p.promQL.Query)
	}
	return p.builtIn
}

// prioritizers lists a policy's scores: with mode Additive (the default),
// Balance and Steady of weight 1 unless configured otherwise, plus the
// configurations; with Exact only the configurations. Unknown built-ins are
// returned as problems and skipped.
func prioritizers(pol fleetv1.PrioritizerPolicy) (out []prioritizer, problems []string) {
	configured := map[string]bool{}
	for i, c := range pol.Configurations {
		switch c.ScoreCoordinate.Type {
		case ScorePromQL:
			if c.ScoreCoordinate.PromQL == nil || c.ScoreCoordinate.PromQL.Query == "" {
				problems = append(problems, fmt.Sprintf("prioritizer %d: type PromQL without a query", i))
				continue
			}
			out = append(out, prioritizer{promQL: c.ScoreCoordinate.PromQL, weight: int64(c.Weight), index: i})
		case ScoreBuiltIn:
			switch b := c.ScoreCoordinate.BuiltIn; b {
			case Balance, Steady, ResourceAllocatableCPU, ResourceAllocatableMemory:
				configured[b] = true
				out = append(out, prioritizer{builtIn: b, weight: int64(c.Weight), index: i})
			default:
				problems = append(problems, fmt.Sprintf("prioritizer %d: unknown built-in %q", i, b))
			}
		default:
			problems = append(problems, fmt.Sprintf("prioritizer %d: unknown type %q", i, c.ScoreCoordinate.Type))
		}
	}
	if pol.Mode != ModeExact {
		for _, b := range []string{Balance, Steady} {
			if !configured[b] {
				out = append(out, prioritizer{builtIn: b, weight: defaultWeight, index: -1})
			}
		}
	}
	return out, problems
}

// normalise maps values to [-100, 100] over the clusters that have one: the
// highest scores 100 and the lowest -100 (the reverse when ascending), the
// others linearly between; when all are equal, all score 0. Clusters
// without a value score 0.
func normalise(names []string, values map[string]float64, ascending bool) map[string]int64 {
	out := make(map[string]int64, len(names))
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, n := range names {
		if v, ok := values[n]; ok {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	for _, n := range names {
		v, ok := values[n]
		if !ok || hi <= lo {
			out[n] = 0
			continue
		}
		s := -maxScore + 2*maxScore*(v-lo)/(hi-lo)
		if ascending {
			s = -s
		}
		out[n] = int64(math.Round(s))
	}
	return out
}

// builtInValues gives the raw values of a built-in prioritizer, and whether
// lower ranks higher.
func builtInValues(name string, clusters map[string]*fleetv1.ManagedCluster, current map[string]bool, others map[string]int) (map[string]float64, bool) {
	vals := make(map[string]float64, len(clusters))
	switch name {
	case Balance:
		// Fewer decisions of other placements rank higher.
		for n := range clusters {
			vals[n] = float64(others[n])
		}
		return vals, true
	case Steady:
		// Steady is absolute rather than normalised: the current decisions
		// score 100, the others 0, so it adds the same margin whatever the
		// other candidates are.
		for n := range clusters {
			if current[n] {
				vals[n] = maxScore
			} else {
				vals[n] = 0
			}
		}
		return vals, false
	case ResourceAllocatableCPU, ResourceAllocatableMemory:
		res := corev1.ResourceCPU
		if name == ResourceAllocatableMemory {
			res = corev1.ResourceMemory
		}
		for n, mc := range clusters {
			if q, ok := mc.Status.Allocatable[res]; ok {
				vals[n] = q.AsApproximateFloat64()
			}
		}
		return vals, false
	}
	return vals, false
}

// scoreTable is every candidate's score per prioritizer and in total.
type scoreTable struct {
	total map[string]int64
	// by holds each prioritizer's (unweighted) scores, in prioritizer order.
	by []map[string]int64
}

// score computes candidates' totals. promQL holds each PromQL prioritizer's
// values by the prioritizer's configuration index.
func score(ps []prioritizer, clusters map[string]*fleetv1.ManagedCluster, current map[string]bool, others map[string]int, promQL map[int]map[string]float64) scoreTable {
	names := make([]string, 0, len(clusters))
	for n := range clusters {
		names = append(names, n)
	}
	sort.Strings(names)
	t := scoreTable{total: make(map[string]int64, len(names))}
	for _, n := range names {
		t.total[n] = 0
	}
	for _, p := range ps {
		var s map[string]int64
		switch {
		case p.promQL != nil:
			s = normalise(names, promQL[p.index], p.promQL.Ascending)
		case p.builtIn == Steady:
			vals, _ := builtInValues(Steady, clusters, current, others)
			s = make(map[string]int64, len(names))
			for _, n := range names {
				s[n] = int64(vals[n])
			}
		default:
			vals, asc := builtInValues(p.builtIn, clusters, current, others)
			s = normalise(names, vals, asc)
		}
		t.by = append(t.by, s)
		for _, n := range names {
			t.total[n] += p.weight * s[n]
		}
	}
	return t
}

// withStaleness rewrites a query so that its instant selectors see only
// samples newer than staleness: each one outside a range becomes
// last_over_time(<selector>[staleness]) (keeping its offset and @). A
// selector that is the argument of timestamp() is left alone, since its
// samples' own times are what it reads. staleness <= 0 returns the query as
// it is (the engine's lookback applies).
func withStaleness(query string, staleness time.Duration) (string, error) {
	expr, err := parser.ParseExpr(query)
	if err != nil {
		return "", err
	}
	if staleness <= 0 {
		return query, nil
	}
	return rewrite(expr, staleness).String(), nil
}

func rewrite(e parser.Expr, d time.Duration) parser.Expr {
	switch n := e.(type) {
	case *parser.VectorSelector:
		return &parser.Call{
			Func: parser.Functions["last_over_time"],
			Args: parser.Expressions{&parser.MatrixSelector{VectorSelector: n, Range: d}},
		}
	case *parser.AggregateExpr:
		n.Expr = rewrite(n.Expr, d)
		if n.Param != nil {
			n.Param = rewrite(n.Param, d)
		}
	case *parser.BinaryExpr:
		n.LHS, n.RHS = rewrite(n.LHS, d), rewrite(n.RHS, d)
	case *parser.Call:
		if n.Func.Name == "timestamp" {
			return n
		}
		for i := range n.Args {
			n.Args[i] = rewrite(n.Args[i], d)
		}
	case *parser.ParenExpr:
		n.Expr = rewrite(n.Expr, d)
	case *parser.UnaryExpr:
		n.Expr = rewrite(n.Expr, d)
	case *parser.SubqueryExpr:
		n.Expr = rewrite(n.Expr, d)
	case *parser.StepInvariantExpr:
		n.Expr = rewrite(n.Expr, d)
	}
	// MatrixSelector (already bounded by its range), literals.
	return e
}

// queryScores runs a PromQL prioritizer and returns one value per cluster
// (the mean when the query returns several samples for a cluster); samples
// without a cluster label are ignored.
func queryScores(ctx context.Context, query query.QueryFunc, s *fleetv1.PromQLScore, now time.Time) (map[string]float64, error) {
	expr, err := withStaleness(s.Query, s.Staleness.Duration)
	if err != nil {
		return nil, fmt.Errorf("parse query %q: %w", s.Query, err)
	}
	vec, err := query(ctx, expr, now)
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", s.Query, err)
	}
	sums, counts := map[string]float64{}, map[string]int{}
	for _, smp := range vec {
		c := smp.Metric.Get(clusterLabel)
		if c == "" || smp.H != nil || math.IsNaN(smp.F) || math.IsInf(smp.F, 0) {
			continue
		}
		sums[c] += smp.F
		counts[c]++
	}
	out := make(map[string]float64, len(sums))
	for c, v := range sums {
		out[c] = v / float64(counts[c])
	}
	return out, nil
}
