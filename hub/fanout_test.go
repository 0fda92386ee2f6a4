package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"github.com/thanos-io/thanos/pkg/info/infopb"
	"github.com/thanos-io/thanos/pkg/store/storepb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fanoutRules are a per-cluster group (a recording rule and an alert),
// which replicas split by cluster ownership, and a fleet-wide one, which
// one replica evaluates.
const fanoutRules = `groups:
  - name: fanout
    rules:
      - record: cluster:fanout_probe:sum
        expr: sum by (cluster) (fanout_probe)
      - alert: FanoutProbe
        expr: sum by (cluster) (fanout_probe) >= 0
  - name: fanout-fleet
    rules:
      - record: fleet:fanout_probe:count
        expr: count(fanout_probe)
      - alert: FanoutFleet
        expr: count(fanout_probe) > 0
`

// fanoutClusters are the clusters the test writes, each to one replica.
var fanoutClusters = []string{"c-0", "c-1", "c-2", "c-3", "c-4", "c-5"}

// TestEveryReplicaAnswersForTheFleet runs three hub replicas that list each
// other as peers, writes each cluster's series to one of them through its
// agents' port, and the same series to one hub: every replica's /api/v1
// (instant and range queries, series, label names and values) answers what
// the one hub answers. The rules split the work: each replica evaluates the
// per-cluster group for the clusters it owns only, and one replica the
// fleet-wide group; each result is written, and each alert sent, once;
// and every replica reads the whole fleet's alerts from its peers, and
// lists them on its /api/v1/alerts.
func TestEveryReplicaAnswersForTheFleet(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	rules := ruleFile(t, "fanout.yaml", fanoutRules)
	config := func(am string) Config {
		cfg := DefaultConfig()
		cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
		cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("localhost")
		cfg.AgentTLS.ClientCAFile = ca.CertFile
		cfg.Store.Dir = t.TempDir()
		cfg.NoShippedRules = true
		cfg.Alerting.RuleFiles = []string{rules}
		cfg.Alerting.EvaluationInterval = 200 * time.Millisecond
		cfg.Alerting.AlertmanagerURLs = []string{am}
		return cfg
	}
	var peers []string
	for range 3 {
		peers = append(peers, testbed.FreeAddr(t))
	}
	var replicas []*Hub
	var ams []*alertSink
	for i, addr := range peers {
		am := newAlertSink(t)
		cfg := config(am.URL)
		cfg.GRPCListenAddress, cfg.QueryPeers = addr, peers
		cfg.Store.Replica = fmt.Sprintf("hub-%d", i)
		cfg.PeerRefreshInterval = 200 * time.Millisecond
		h, _ := runHub(t, cfg)
		replicas, ams = append(replicas, h), append(ams, am)
	}
	one, _ := runHub(t, config(newAlertSink(t).URL))

	now := time.Now().Truncate(time.Second)
	for i, cluster := range fanoutClusters {
		for _, h := range []*Hub{replicas[i%len(replicas)], one} {
			writeProbe(t, ca, h, cluster, i, now)
		}
	}

	for i, h := range replicas {
		testutil.Eventually(t, 30*time.Second, func() error {
			want, got := answers(t, hubAPI(t, one), now), answers(t, hubAPI(t, h), now)
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range want {
					if !yield(k) {
						return
					}
				}
			}) {
				if got[k] != want[k] {
					return fmt.Errorf("replica %d: %s = %s, want what one hub answers: %s", i, k, got[k], want[k])
				}
			}
			return nil
		})
	}

	// Each cluster's alert reaches the Alertmanager of its owner only.
	owners := map[string]int{}
	for i, h := range replicas {
		for _, c := range fanoutClusters {
			if h.membership.Owns(c) {
				owners[c] = i
			}
		}
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, c := range fanoutClusters {
			for i, am := range ams {
				if got, want := am.has("FanoutProbe", c), owners[c] == i; got != want {
					return fmt.Errorf("alert FanoutProbe of %s at replica %d's Alertmanager: %t, want %t (owner: replica %d)", c, i, got, want, owners[c])
				}
			}
		}
		return nil
	})
	// Each replica holds the alerts of the groups it evaluates: its own
	// clusters', and the fleet-wide alert at one replica; each reads the
	// fleet's from its peers.
	testutil.Eventually(t, 30*time.Second, func() error {
		fleetAt := 0
		for i, h := range replicas {
			var own, want []string
			for _, c := range fanoutClusters {
				if owners[c] == i {
					want = append(want, c)
				}
			}
			for _, a := range h.alerts.Load().Local() {
				switch a.Name {
				case "FanoutProbe":
					own = append(own, a.Labels["cluster"])
				case "FanoutFleet":
					fleetAt++
				}
			}
			slices.Sort(own)
			if !slices.Equal(own, want) {
				return fmt.Errorf("replica %d evaluated FanoutProbe for %v, want the clusters it owns: %v", i, own, want)
			}
			active, err := h.alerts.Load().Active(context.Background())
			if err != nil {
				return fmt.Errorf("replica %d: %w", i, err)
			}
			var fleet []string
			for _, a := range active {
				fleet = append(fleet, a.Name+"/"+a.Labels["cluster"])
			}
			wantFleet := []string{"FanoutFleet/"}
			for _, c := range fanoutClusters {
				wantFleet = append(wantFleet, "FanoutProbe/"+c)
			}
			if !slices.Equal(fleet, wantFleet) {
				return fmt.Errorf("replica %d reads the fleet's alerts as %v, want %v", i, fleet, wantFleet)
			}
			listed, err := hubAPI(t, h).Alerts(context.Background())
			if err != nil {
				return fmt.Errorf("replica %d's /api/v1/alerts: %w", i, err)
			}
			var api []string
			for _, a := range listed.Alerts {
				if a.State != promv1.AlertStateFiring {
					return fmt.Errorf("replica %d's /api/v1/alerts lists %v %s, want firing", i, a.Labels, a.State)
				}
				api = append(api, string(a.Labels["alertname"])+"/"+string(a.Labels["cluster"]))
			}
			if !slices.Equal(api, wantFleet) {
				return fmt.Errorf("replica %d's /api/v1/alerts lists %v, want the fleet's %v", i, api, wantFleet)
			}
		}
		if fleetAt != 1 {
			return fmt.Errorf("%d replicas evaluate the fleet-wide group, want 1", fleetAt)
		}
		return nil
	})
	// Each rule result is in one replica's own store: the per-cluster ones
	// in their owner's, the fleet-wide one in one replica's.
	for _, metric := range []string{"cluster:fanout_probe:sum", "fleet:fanout_probe:count"} {
		var held []string
		for _, h := range replicas {
			held = append(held, ownSeries(t, h, metric)...)
		}
		slices.Sort(held)
		if n := len(held); (metric == "fleet:fanout_probe:count" && n != 1) || (metric != "fleet:fanout_probe:count" && n != len(fanoutClusters)) {
			t.Errorf("the replicas' own stores hold %s as %v, want each series once", metric, held)
		}
	}
}

// answers are a hub's answers to the users' API calls the test compares.
func answers(t *testing.T, api promv1.API, now time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	for _, q := range []string{`fanout_probe`, `count(fanout_probe)`, `sum by (cluster) (fanout_probe)`, `sum by (node) (fanout_probe)`,
		`fanout_probe{cluster=~"c-[0-2]"}`} {
		v, _, err := api.Query(ctx, q, now)
		out["query "+q] = fmt.Sprint(v, err)
	}
	// The rules' results, as they are now: values, not timestamps.
	for _, q := range []string{`cluster:fanout_probe:sum`, `fleet:fanout_probe:count`, `count by (cluster) (ALERTS{alertname="FanoutProbe"})`} {
		v, _, err := api.Query(ctx, q, time.Now())
		var vals []string
		if vec, ok := v.(model.Vector); ok {
			for _, s := range vec {
				vals = append(vals, fmt.Sprintf("%s %s", s.Metric, s.Value))
			}
		}
		slices.Sort(vals)
		out["rules "+q] = fmt.Sprint(vals, err)
	}
	for _, q := range []string{`sum by (cluster) (fanout_probe)`, `max(fanout_probe)`} {
		v, _, err := api.QueryRange(ctx, q, promv1.Range{Start: now.Add(-4 * time.Minute), End: now, Step: 30 * time.Second})
		out["query_range "+q] = fmt.Sprint(v, err)
	}
	series, _, err := api.Series(ctx, []string{`fanout_probe`}, now.Add(-time.Hour), now.Add(time.Minute))
	slices.SortFunc(series, func(a, b model.LabelSet) int { return strings.Compare(a.String(), b.String()) })
	out["series"] = fmt.Sprint(series, err)
	names, _, err := api.LabelNames(ctx, []string{`fanout_probe`}, now.Add(-time.Hour), now.Add(time.Minute))
	out["labels"] = fmt.Sprint(names, err)
	values, _, err := api.LabelValues(ctx, "cluster", []string{`{__name__=~"fanout_probe|cluster:fanout_probe:sum"}`}, now.Add(-time.Hour), now.Add(time.Minute))
	out["label values"] = fmt.Sprint(values, err)
	return out
}

// writeProbe remote-writes two series of fanout_probe for the cluster
// through the hub's agents' port, five minutes of samples 30 s apart.
func writeProbe(t *testing.T, ca *testbed.CA, h *Hub, cluster string, i int, now time.Time) {
	t.Helper()
	var wr prompb.WriteRequest
	for n, node := range []string{"n1", "n2"} {
		ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "fanout_probe"}, {Name: "node", Value: node}}}
		for k := range 10 {
			ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(10*i + n + k), Timestamp: now.Add(time.Duration(k-9) * 30 * time.Second).UnixMilli()})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	mustWrite(t, ca, h, cluster, &wr)
}

// mustWrite sends the request through the hub's agents' port with the
// cluster's client certificate, and fails the test unless it is accepted.
func mustWrite(t *testing.T, ca *testbed.CA, h *Hub, cluster string, wr *prompb.WriteRequest) {
	t.Helper()
	client := agentClient(t, ca, cluster)
	defer client.CloseIdleConnections()
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "https://"+h.AgentAddr().String()+"/api/v1/write",
		bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("remote write %s: %v", cluster, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("remote write %s: %s", cluster, resp.Status)
	}
}

// ownSeries are the series of a metric in the replica's own store, as its
// StoreAPI serves them over the last hour.
func ownSeries(t *testing.T, h *Hub, metric string) []string {
	t.Helper()
	conn, err := grpc.NewClient(h.GRPCAddr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := storepb.NewStoreClient(conn).Series(context.Background(), &storepb.SeriesRequest{
		MinTime: time.Now().Add(-time.Hour).UnixMilli(), MaxTime: time.Now().Add(time.Minute).UnixMilli(),
		Matchers: []storepb.LabelMatcher{{Type: storepb.LabelMatcher_EQ, Name: model.MetricNameLabel, Value: metric}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := r.GetSeries(); s != nil {
			out = append(out, s.PromLabels().String())
		}
	}
}

// alertSink is an Alertmanager's alerts endpoint that records what it
// receives.
type alertSink struct {
	URL string
	mu  sync.Mutex
	got map[string]bool // alertname/cluster
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{got: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, a := range alerts {
			s.got[a.Labels["alertname"]+"/"+a.Labels["cluster"]] = true
		}
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *alertSink) has(alert, cluster string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[alert+"/"+cluster]
}

// TestReplicaAnswersWhenAPeerStops runs two replicas that list each other
// and stops one: the other's /api/v1 keeps answering with its own
// clusters (the stopped peer is no longer read once its Info call fails),
// and its rules keep evaluating.
func TestReplicaAnswersWhenAPeerStops(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	rules := ruleFile(t, "fanout.yaml", fanoutRules)
	peers := []string{testbed.FreeAddr(t), testbed.FreeAddr(t)}
	var replicas []*Hub
	var stops []func()
	for i := range peers {
		cfg := peerConfig(t, ca, peers, i)
		cfg.Alerting.RuleFiles, cfg.Alerting.EvaluationInterval = []string{rules}, 200*time.Millisecond
		h, stop := runHub(t, cfg)
		replicas, stops = append(replicas, h), append(stops, stop)
	}
	now := time.Now().Truncate(time.Second)
	writeProbe(t, ca, replicas[0], "c-0", 0, now)
	writeProbe(t, ca, replicas[1], "c-1", 1, now)
	api := hubAPI(t, replicas[0])
	clusters := func() (string, error) {
		v, _, err := api.Query(context.Background(), `count by (cluster) (fanout_probe)`, now)
		return fmt.Sprint(v), err
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if got, err := clusters(); err != nil || got != "{cluster=\"c-0\"} => 2 @["+fmt.Sprint(now.Unix())+"]\n{cluster=\"c-1\"} => 2 @["+fmt.Sprint(now.Unix())+"]" {
			return fmt.Errorf("replica 0 answers %q (%v), want both clusters", got, err)
		}
		return nil
	})

	stops[1]()
	stopped := time.Now()
	testutil.Eventually(t, 30*time.Second, func() error {
		if got, err := clusters(); err != nil || got != "{cluster=\"c-0\"} => 2 @["+fmt.Sprint(now.Unix())+"]" {
			return fmt.Errorf("replica 0 answers %q (%v) with its peer stopped, want its own cluster", got, err)
		}
		groups, err := api.Rules(context.Background())
		if err != nil {
			return err
		}
		for _, g := range groups.Groups {
			if g.Name != "fanout" { // the fleet-wide group runs where the membership says
				continue
			}
			for _, r := range g.Rules {
				if rr, ok := r.(promv1.RecordingRule); ok && (rr.Health != promv1.RuleHealthGood || time.Since(rr.LastEvaluation) > 2*time.Second) {
					return fmt.Errorf("rule %s: health %s, last evaluated %s", rr.Name, rr.Health, rr.LastEvaluation)
				}
			}
		}
		return nil
	})
	t.Logf("replica 0 answered and evaluated without its peer %s after the peer stopped", time.Since(stopped).Round(time.Millisecond))
}

// TestReplicaReadsARestartedPeerAtOnce stops a replica for longer than
// gRPC's reconnect backoff takes to grow past several seconds, starts it
// again on its data, and checks that its peer reads it again within a few
// seconds of its StoreAPI answering, rather than at gRPC's next reconnect
// attempt (its default backoff grows to two minutes).
func TestReplicaReadsARestartedPeerAtOnce(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	peers := []string{testbed.FreeAddr(t), testbed.FreeAddr(t)}
	var (
		cfgs     []Config
		replicas []*Hub
		stops    []func()
	)
	for i := range peers {
		cfg := peerConfig(t, ca, peers, i)
		h, stop := runHub(t, cfg)
		cfgs, replicas, stops = append(cfgs, cfg), append(replicas, h), append(stops, stop)
	}
	now := time.Now().Truncate(time.Second)
	writeProbe(t, ca, replicas[0], "c-0", 0, now)
	writeProbe(t, ca, replicas[1], "c-1", 1, now)
	api := hubAPI(t, replicas[0])
	both := fmt.Sprintf("{cluster=\"c-0\"} => 2 @[%d]\n{cluster=\"c-1\"} => 2 @[%d]", now.Unix(), now.Unix())
	readsBoth := func() error {
		v, _, err := api.Query(context.Background(), `count by (cluster) (fanout_probe)`, now)
		if err != nil || fmt.Sprint(v) != both {
			return fmt.Errorf("replica 0 answers %q (%v), want both clusters", v, err)
		}
		return nil
	}
	testutil.Eventually(t, 30*time.Second, readsBoth)

	// The downtime is the scenario, not a wait for something: gRPC's
	// reconnect attempts after 30 s down are about 10 s apart by default.
	stops[1]()
	time.Sleep(30 * time.Second)
	h, _ := runHub(t, cfgs[1])
	restarted := time.Now()
	testutil.Eventually(t, 30*time.Second, func() error {
		c, err := grpc.NewClient(peers[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = infopb.NewInfoClient(c).Info(context.Background(), &infopb.InfoRequest{})
		return err
	})
	answering := time.Since(restarted)
	testutil.Eventually(t, 30*time.Second, readsBoth)
	read := time.Since(restarted)
	t.Logf("%s's StoreAPI answered %s after its restart; replica 0 read it again %s after", h.cfg.Store.Replica,
		answering.Round(time.Millisecond), read.Round(time.Millisecond))
	if bound := answering + 3*peerRetryInterval; read > bound {
		t.Errorf("replica 0 read its restarted peer %s after the restart, want within %s (its StoreAPI answering, then %s)",
			read, bound, 3*peerRetryInterval)
	}
}

// peerConfig is the configuration of the i-th of replicas that list each
// other as static peers (at peers' addresses), on loopback, with the
// agents' CA and no shipped rules.
func peerConfig(t *testing.T, ca *testbed.CA, peers []string, i int) Config {
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress, cfg.GRPCListenAddress = "127.0.0.1:0", "127.0.0.1:0", peers[i]
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("localhost")
	cfg.AgentTLS.ClientCAFile = ca.CertFile
	cfg.Store.Dir, cfg.Store.Replica = t.TempDir(), fmt.Sprintf("hub-%d", i)
	cfg.QueryPeers, cfg.PeerRefreshInterval = peers, 200*time.Millisecond
	cfg.NoShippedRules = true
	return cfg
}
