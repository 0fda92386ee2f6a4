package alerting

import (
	"slices"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
)

// PerCluster tells whether every result series of expr carries the
// cluster label of the input series it was computed from, and only
// from series of that cluster: then a replica that reads only the
// clusters it owns computes exactly the results for those clusters that
// a replica reading the whole fleet computes. Anything that mixes
// clusters (an aggregation or a match that drops the label, scalar(),
// absent(), a label rewritten into it) makes the expression fleet-wide.
func PerCluster(expr parser.Expr, cluster string) bool {
	ok, vector := local(expr, cluster)
	return ok && vector
}

// local tells whether e keeps clusters apart, and whether its value is a
// vector (false: a scalar or a string, the same for every cluster).
func local(e parser.Expr, cluster string) (ok, vector bool) {
	switch n := e.(type) {
	case *parser.NumberLiteral, *parser.StringLiteral:
		return true, false
	case *parser.VectorSelector:
		return true, true
	case *parser.MatrixSelector:
		return local(n.VectorSelector, cluster)
	case *parser.SubqueryExpr:
		return local(n.Expr, cluster)
	case *parser.ParenExpr:
		return local(n.Expr, cluster)
	case *parser.UnaryExpr:
		return local(n.Expr, cluster)
	case *parser.StepInvariantExpr:
		return local(n.Expr, cluster)
	case *parser.AggregateExpr:
		return localAggregate(n, cluster)
	case *parser.BinaryExpr:
		return localBinary(n, cluster)
	case *parser.Call:
		return localCall(n, cluster)
	default:
		return false, false
	}
}

// localAggregate: an aggregation keeps clusters apart when it groups by
// the cluster label (count_values must not write its values into it).
func localAggregate(n *parser.AggregateExpr, cluster string) (bool, bool) {
	if ok, vector := local(n.Expr, cluster); !ok || !vector {
		return false, false
	}
	if n.Param != nil {
		if ok, vector := local(n.Param, cluster); !ok || vector {
			return false, false
		}
		if s, isString := n.Param.(*parser.StringLiteral); isString && n.Op == parser.COUNT_VALUES && s.Val == cluster {
			return false, false
		}
	}
	grouped := slices.Contains(n.Grouping, cluster)
	return grouped != n.Without, true
}

// localBinary: between two vectors, the match must include the cluster
// label; a scalar side must itself be the same for every cluster.
func localBinary(n *parser.BinaryExpr, cluster string) (bool, bool) {
	lok, lvec := local(n.LHS, cluster)
	rok, rvec := local(n.RHS, cluster)
	if !lok || !rok {
		return false, false
	}
	if lvec && rvec && n.VectorMatching != nil {
		m := n.VectorMatching
		if slices.Contains(m.MatchingLabels, cluster) != m.On {
			return false, false
		}
	}
	return true, lvec || rvec
}

// localCall: a function keeps clusters apart when its arguments do,
// except for those that build series from nothing or from several
// clusters, or write the cluster label.
func localCall(n *parser.Call, cluster string) (bool, bool) {
	switch n.Func.Name {
	case "scalar", "vector", "absent", "absent_over_time", "info":
		return false, false
	case "label_replace", "label_join":
		if len(n.Args) > 1 {
			if dst, ok := n.Args[1].(*parser.StringLiteral); !ok || dst.Val == cluster {
				return false, false
			}
		}
	}
	for _, a := range n.Args {
		if ok, _ := local(a, cluster); !ok {
			return false, false
		}
	}
	return true, n.Func.ReturnType == parser.ValueTypeVector
}

// perClusterGroup tells whether every rule of g computes per cluster and
// none sets the cluster label itself.
func perClusterGroup(g *rules.Group, cluster string) bool {
	for _, r := range g.Rules() {
		if r.Labels().Has(cluster) || !PerCluster(r.Query(), cluster) {
			return false
		}
	}
	return len(g.Rules()) > 0
}
