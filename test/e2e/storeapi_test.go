package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// probeValues is each cluster's fleet_probe value.
var probeValues = map[string]int{"east-1": 2, "east-2": 3, "west-1": 4}

// clusterRules records two series per cluster into the hub's store, as a
// cluster's agent would write them.
func clusterRules(t *testing.T, clusters ...string) string {
	var b strings.Builder
	b.WriteString("groups:\n  - name: fleet\n    rules:\n")
	for _, c := range clusters {
		fmt.Fprintf(&b, "      - record: fleet_probe\n        expr: label_replace(vector(%d), \"cluster\", %q, \"\", \"\")\n", probeValues[c], c)
		fmt.Fprintf(&b, "      - record: fleet_probe_nodes\n        expr: label_replace(label_replace(vector(1), \"cluster\", %q, \"\", \"\"), \"node\", \"n1\", \"\", \"\")\n", c)
	}
	path := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestThanosQueryOverHubStoreAPIs runs two hubs, each holding different
// clusters, and a stock `thanos query` (Thanos v0.42.4's own binary) over
// their StoreAPIs: fleet-wide PromQL through it answers what one hub
// holding every cluster answers.
func TestThanosQueryOverHubStoreAPIs(t *testing.T) {
	t.Parallel()
	start := func(rules string) *hubtest.Hub {
		return hubtest.Start(t, hubtest.Config(t, nil, func(c *hub.Config) {
			c.GRPCListenAddress = "127.0.0.1:0"
			c.NoShippedRules = true
			c.Alerting.RuleFiles = []string{rules}
			c.Alerting.EvaluationInterval = time.Second
		}))
	}
	east, west := start(clusterRules(t, "east-1", "east-2")), start(clusterRules(t, "west-1"))
	one := start(clusterRules(t, "east-1", "east-2", "west-1"))

	querier := testbed.StartThanosQuery(t, testbed.ThanosQueryOptions{Endpoints: []string{east.GRPCAddr().String(), west.GRPCAddr().String()}})
	c, err := api.NewClient(api.Config{Address: querier.URL()})
	if err != nil {
		t.Fatal(err)
	}
	query := promv1.NewAPI(c)

	for _, q := range []string{
		`count(fleet_probe)`,
		`sort(sum by (cluster) (fleet_probe))`,
		`sum(fleet_probe_nodes) by (node)`,
		`count by (cluster) (fleet_probe_nodes{cluster=~"east.*"})`,
	} {
		testutil.Eventually(t, 60*time.Second, func() error {
			at := time.Now()
			want, err := instant(one.API, q, at)
			if err != nil {
				return err
			}
			got, err := instant(query, q, at)
			if err != nil {
				return fmt.Errorf("thanos query: %w", err)
			}
			if got != want || want == "" {
				return fmt.Errorf("%s through thanos query = %q, one hub = %q", q, got, want)
			}
			return nil
		})
	}
}

// instant runs q at at and returns its vector's samples, sorted, without
// timestamps.
func instant(a promv1.API, q string, at time.Time) (string, error) {
	v, _, err := a.Query(context.Background(), q, at)
	if err != nil {
		return "", err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return "", fmt.Errorf("%s: %s, want a vector", q, v.Type())
	}
	var out []string
	for _, s := range vec {
		out = append(out, fmt.Sprintf("%s %s", s.Metric, s.Value))
	}
	sort.Strings(out)
	return strings.Join(out, "; "), nil
}
