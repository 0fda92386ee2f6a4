package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestThanosQueryAndEveryReplicaAnswerAsOneHub runs three hub replicas that
// list each other as peers, each named by its replica label, and a stock
// `thanos query` (Thanos v0.42.4's own binary) over their StoreAPIs,
// deduplicating by that label. The replicas load the same rules, which
// record every cluster's series: each is written by its cluster's owner
// only, so the clusters spread over the replicas. Fleet-wide PromQL through
// thanos query and through every replica's own /api/v1 answers exactly what
// one hub loading the same rules answers.
func TestThanosQueryAndEveryReplicaAnswerAsOneHub(t *testing.T) {
	t.Parallel()
	rules := clusterRules(t, "east-1", "east-2", "west-1")
	configure := func(c *hub.Config) {
		c.NoShippedRules = true
		c.Alerting.RuleFiles = []string{rules}
		c.Alerting.EvaluationInterval = time.Second
	}
	peers := []string{testbed.FreeAddr(t), testbed.FreeAddr(t), testbed.FreeAddr(t)}
	var replicas []*hubtest.Hub
	for i, addr := range peers {
		replicas = append(replicas, hubtest.Start(t, hubtest.Config(t, nil, configure, func(c *hub.Config) {
			c.GRPCListenAddress, c.QueryPeers, c.PeerRefreshInterval = addr, peers, 500*time.Millisecond
			c.Store.Replica = fmt.Sprintf("hub-%d", i)
		})))
	}
	one := hubtest.Start(t, hubtest.Config(t, nil, configure))

	querier := testbed.StartThanosQuery(t, testbed.ThanosQueryOptions{Endpoints: peers, ReplicaLabels: []string{metricstore.DefaultReplicaLabel}})
	c, err := api.NewClient(api.Config{Address: querier.URL()})
	if err != nil {
		t.Fatal(err)
	}
	apis := map[string]promv1.API{"thanos query": promv1.NewAPI(c)}
	for i, r := range replicas {
		apis[fmt.Sprintf("replica %d's /api/v1", i)] = r.API
	}

	for _, q := range []string{
		`count(fleet_probe)`,
		`sort(sum by (cluster) (fleet_probe))`,
		`sum(fleet_probe_nodes) by (node)`,
		`count by (cluster) (fleet_probe_nodes{cluster=~"east.*"})`,
		`count by (cluster, ` + metricstore.DefaultReplicaLabel + `) (fleet_probe)`,
	} {
		for name, a := range apis {
			testutil.Eventually(t, 60*time.Second, func() error {
				at := time.Now()
				want, err := instant(one.API, q, at)
				if err != nil {
					return err
				}
				got, err := instant(a, q, at)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if got != want || want == "" {
					return fmt.Errorf("%s through %s = %q, one hub = %q", q, name, got, want)
				}
				return nil
			})
		}
	}
	// Where the clusters' series are: each in its owner's store only.
	for i, r := range replicas {
		own, err := instant(r.API, `count by (cluster) (fleet_probe{`+metricstore.DefaultReplicaLabel+`="`+fmt.Sprintf("hub-%d", i)+`"})`, time.Now())
		t.Logf("replica %d holds %q (err %v)", i, own, err)
	}
}
