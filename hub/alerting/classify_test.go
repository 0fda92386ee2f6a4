package alerting

import (
	"log/slog"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"

	fleetrules "github.com/fleetpulse/fleetpulse/rules"
)

func TestPerCluster(t *testing.T) {
	cases := map[string]bool{
		`up`:                                           true,
		`rate(x[5m]) > 0`:                              true,
		`sum by (cluster) (x)`:                         true,
		`sum by (cluster, ns) (rate(x[5m])) > 3`:       true,
		`sum without (pod) (x)`:                        true,
		`topk by (cluster) (3, x)`:                     true,
		`a / on (cluster) group_left b`:                true,
		`a / ignoring (pod) b`:                         true,
		`a or sum by (cluster) (b) * 0`:                true,
		`time() - max by (cluster) (x)`:                true,
		`label_replace(x, "dst", "$1", "src", "(.*)")`: true,
		`histogram_quantile(0.9, sum by (cluster, le) (rate(h[5m])))`:     true,
		`max_over_time(x[10m:1m])`:                                        true,
		`count by (cluster) (x offset 10m) unless count by (cluster) (x)`: true,
		`sum(x)`:                    false,
		`sum by (ns) (x)`:           false,
		`sum without (cluster) (x)`: false,
		`topk(3, x)`:                false,
		`a / on (ns) b`:             false,
		`a / ignoring (cluster) b`:  false,
		`a and on () b`:             false,
		`x > scalar(sum(x))`:        false,
		`vector(1)`:                 false,
		`absent(x{cluster="a"})`:    false,
		`label_replace(x, "cluster", "b", "", "")`: false,
		`count_values("cluster", x)`:               false,
		`time()`:                                   false,
		`1`:                                        false,
	}
	for q, want := range cases {
		expr, err := parser.ParseExpr(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := PerCluster(expr, "cluster"); got != want {
			t.Errorf("PerCluster(%s) = %v, want %v", q, got, want)
		}
	}
}

// TestShippedGroupsSplitByCluster: every shipped group but the fleet-wide
// ones (the fleet's compliance, the hub's rollouts) computes per cluster,
// so that replicas split their work.
func TestShippedGroupsSplitByCluster(t *testing.T) {
	files, err := fleetrules.WriteTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := rules.NewManager(&rules.ManagerOptions{Logger: slog.New(slog.DiscardHandler)})
	groups, errs := m.LoadGroups(0, nil, "", nil, false, files...)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups {
		want := !slices.Contains([]string{"fleetpulse-policy-fleet", "fleetpulse-rollouts"}, g.Name())
		if got := perClusterGroup(g, "cluster"); got != want {
			t.Errorf("group %s: per cluster %v, want %v", g.Name(), got, want)
		}
	}
}
