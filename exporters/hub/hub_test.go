package hub

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	fleethub "github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestMetricsReachHubOverRemoteWrite2 sends metrics with protocol rw2 to a
// real hub over mutual TLS and asks the hub's Prometheus API for them: each
// series arrives with exactly its labels (the resource's, the point's, and
// the hub's cluster label from the client certificate), the hub confirmed
// every sample written, and the exporter never fell back to 1.0.
func TestMetricsReachHubOverRemoteWrite2(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "rw2-agents")
	h := startTestHub(t, ca)

	cfg := createDefaultConfig()
	h.agentConfig(ca, "cluster-a", ProtocolRW2)(cfg)
	exp, logs := startUnqueued(t, cfg)

	now := time.Now().Truncate(time.Millisecond)
	at := pcommon.NewTimestampFromTime(now)
	md := metricsOf(map[string]any{"k8s.cluster.name": "cluster-a", "fleetpulse.cluster.set": "prod"},
		described("Memory allocatable to pods", gauge("k8s.node.allocatable.memory", "By",
			intPoint(4096, at, map[string]any{"k8s.node.name": "n1"}),
			intPoint(8192, at, map[string]any{"k8s.node.name": "n2"}))))
	sum("k8s.container.restarts", "{restart}", true, pmetric.AggregationTemporalityCumulative,
		intPoint(3, at, map[string]any{"k8s.namespace.name": "web", "k8s.pod.name": "web-0"}),
	)(md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty())
	if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatalf("hub refused the request: %v", err)
	}
	for _, e := range logs.All() {
		t.Errorf("exporter warned: %s %v", e.Message, e.ContextMap())
	}

	want := []string{
		`k8s_container_restarts_total{cluster="cluster-a", fleetpulse_cluster_set="prod", k8s_cluster_name="cluster-a", k8s_namespace_name="web", k8s_pod_name="web-0"} => 3`,
		`k8s_node_allocatable_memory_bytes{cluster="cluster-a", fleetpulse_cluster_set="prod", k8s_cluster_name="cluster-a", k8s_node_name="n1"} => 4096`,
		`k8s_node_allocatable_memory_bytes{cluster="cluster-a", fleetpulse_cluster_set="prod", k8s_cluster_name="cluster-a", k8s_node_name="n2"} => 8192`,
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		v, _, err := h.run.API.Query(context.Background(), `{__name__=~"k8s_node_allocatable_memory_bytes|k8s_container_restarts_total"}`, now)
		if err != nil {
			return err
		}
		var got []string
		vec, _ := v.(model.Vector)
		for _, s := range vec {
			got = append(got, s.Metric.String()+" => "+s.Value.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("the hub holds\n %q\nwant\n %q", got, want)
		}
		return nil
	})
}

// testHub is a hub in this process; Stop and Start bring back the same
// hub (addresses and storage), as a restarted process would.
type testHub struct {
	t   *testing.T
	run *hubtest.Hub
	// httpURL and agentsURL stay the same across restarts.
	httpURL, agentsURL string
}

// startTestHub starts a hub whose agent listener trusts ca's client
// certificates, and stops it when the test ends.
func startTestHub(t *testing.T, ca *testbed.CA) *testHub {
	t.Helper()
	run := hubtest.Start(t, hubtest.Config(t, ca, func(c *fleethub.Config) { c.NoShippedRules = true }))
	return &testHub{t: t, run: run, httpURL: run.HTTPURL, agentsURL: run.AgentsURL}
}

// Start runs the hub again and returns once it is ready.
func (h *testHub) Start() {
	h.t.Helper()
	h.run = hubtest.Start(h.t, h.run.Config)
}

// Stop shuts the hub down gracefully; stopping a stopped hub does nothing.
func (h *testHub) Stop() { h.run.Stop() }

// agentConfig points an exporter at the hub's agent listener with a client
// certificate naming cluster.
func (h *testHub) agentConfig(ca *testbed.CA, cluster, protocol string) func(*Config) {
	cert, key := ca.Client(cluster)
	return func(cfg *Config) {
		cfg.Endpoint = h.agentsURL
		cfg.Protocol = protocol
		cfg.TLS.CAFile = ca.CertFile
		cfg.TLS.CertFile, cfg.TLS.KeyFile = cert, key
	}
}
