package hub

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// rf2Replicas runs three hubs in a ring at replication factor 2, each with
// a client certificate of the replication CA replicas, which each takes
// replicated writes from.
func rf2Replicas(t *testing.T, agents, replicas *testbed.CA) ([]*Hub, []func()) {
	t.Helper()
	return ringReplicasWith(t, agents, 3, func(cfg *Config) {
		cfg.Ring.ReplicationFactor = 2
		cfg.Replication.CertFile, cfg.Replication.KeyFile = replicas.Client(cfg.Ring.InstanceID)
		cfg.Replication.CAFile = agents.CertFile
		cfg.Replication.ClientCAFile = replicas.CertFile
		cfg.Replication.Timeout = 2 * time.Second
	})
}

// ownersOf are the replicas that own cluster, in the ring's order (by ID):
// agents are sent to the first.
func ownersOf(t *testing.T, replicas []*Hub, cluster string) []*Hub {
	t.Helper()
	var owners []*Hub
	for _, h := range replicas {
		if h.Ring().Owns(cluster) {
			owners = append(owners, h)
		}
	}
	if len(owners) != 2 {
		t.Fatalf("%s has %d owners at replication factor 2", cluster, len(owners))
	}
	return owners
}

// post sends one remote-write 1.0 sample of metric to path at addr with
// client, without following redirects, and returns the answer's status.
func post(t *testing.T, client *http.Client, addr, path, metric string, ts time.Time) int {
	t.Helper()
	wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: metric}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: ts.UnixMilli()}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, "https://"+addr+path, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestWritesReachEveryOwner runs three hubs at replication factor 2: an
// agent's write, through whichever replica (an owner writes it, another
// sends the agent to the first owner), is in both owners' stores and
// in no other's; the replication path takes only replicas' certificates,
// for clusters the receiver owns, and a replica's certificate does not
// speak for a cluster on the agents' routes. It measures a write at the
// first owner, which waits for the second.
func TestWritesReachEveryOwner(t *testing.T) {
	agents, replicaCA := testbed.NewCA(t, "agents"), testbed.NewCA(t, "replicas")
	replicas, _ := rf2Replicas(t, agents, replicaCA)
	clusters := []string{"c-0", "c-1", "c-2", "c-3", "c-4", "c-5"}
	now := time.Now().Truncate(time.Second)
	for _, c := range clusters {
		owners := ownersOf(t, replicas, c)
		for _, h := range replicas {
			landed, err := remoteWrite(agentClient(t, agents, c), h.AgentAddr().String(), now)
			if err != nil {
				t.Fatalf("%s through %s: %v", c, h.Ring().Self().ID, err)
			}
			// An owner writes it itself; another sends the agent to the first.
			want := owners[0].AgentAddr().String()
			if h.Ring().Owns(c) {
				want = h.AgentAddr().String()
			}
			if landed != want {
				t.Fatalf("%s written to %s landed at %s, not at %s", c, h.Ring().Self().ID, landed, want)
			}
		}
	}
	for _, h := range replicas {
		got := ownSeries(t, h, "redirect_probe")
		for _, c := range clusters {
			has := slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, `cluster="`+c+`"`) })
			if owns := h.Ring().Owns(c); has != owns {
				t.Errorf("%s holds %s: %v, owns it: %v", h.Ring().Self().ID, c, has, owns)
			}
		}
	}

	c := clusters[0]
	owners := ownersOf(t, replicas, c)
	stranger := replicas[slices.IndexFunc(replicas, func(h *Hub) bool { return !h.Ring().Owns(c) })]
	replicaClient := agentClient(t, replicaCA, "hub-0")
	replicaClient.Transport.(*http.Transport).TLSClientConfig.RootCAs = agents.Pool()
	replicate := "/replication/v1/write/" + c
	for _, tc := range []struct {
		name         string
		client       *http.Client
		to           *Hub
		path, metric string
		code         int
	}{
		{"an agent's certificate on the replication path", agentClient(t, agents, c), owners[1], replicate, "refused_agent", http.StatusForbidden},
		{"a replica's write for a cluster the receiver does not own", replicaClient, stranger, replicate, "refused_stranger", http.StatusMisdirectedRequest},
		{"a replica's certificate on the agents' path", replicaClient, owners[1], "/api/v1/write", "refused_replica_as_agent", http.StatusForbidden},
		{"a replica's write for an owned cluster", replicaClient, owners[1], replicate, "replicated_by_hand", http.StatusNoContent},
		{"a replica's write naming no cluster", replicaClient, owners[1], "/replication/v1/write/Not_A_Cluster", "refused_name", http.StatusBadRequest},
	} {
		if code := post(t, tc.client, tc.to.AgentAddr().String(), tc.path, tc.metric, now); code != tc.code {
			t.Errorf("%s: %d, want %d", tc.name, code, tc.code)
		}
	}
	for _, h := range replicas {
		for _, refused := range []string{"refused_agent", "refused_stranger", "refused_replica_as_agent"} {
			if got := ownSeries(t, h, refused); len(got) > 0 {
				t.Errorf("%s holds %v, which it refused", h.Ring().Self().ID, got)
			}
		}
	}
	// Written where it was sent, and not replicated further.
	for _, h := range replicas {
		if got := ownSeries(t, h, "replicated_by_hand"); (len(got) > 0) != (h == owners[1]) {
			t.Errorf("%s holds the hand-replicated write: %v", h.Ring().Self().ID, got)
		}
	}

	// What a write costs at replication factor 2: its first owner answers
	// once the second wrote it too.
	const writes = 200
	client := agentClient(t, agents, c)
	start := time.Now()
	for i := range writes {
		if _, err := remoteWrite(client, owners[0].AgentAddr().String(), now.Add(time.Duration(i+1)*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d writes of %s at its first owner %s, replication factor 2: %s each", writes, c, owners[0].Ring().Self().ID, time.Since(start)/writes)
}

// ackedWriter writes one sample of rf2_probe at a time for a cluster, each
// until a replica acknowledges it, trying the next address after a
// failure, as an agent retries; it records the timestamps acknowledged.
type ackedWriter struct {
	client *http.Client
	addrs  []string
	t0     time.Time

	mu     sync.Mutex
	acked  []int64
	failed int
}

func (w *ackedWriter) run(ctx context.Context) {
	next := 0
	for i := 0; ctx.Err() == nil; i++ {
		ts := w.t0.Add(time.Duration(i) * time.Millisecond)
		for ctx.Err() == nil {
			wr := prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
				Labels:  []prompb.Label{{Name: "__name__", Value: "rf2_probe"}},
				Samples: []prompb.Sample{{Value: float64(i), Timestamp: ts.UnixMilli()}},
			}}}
			raw, _ := wr.Marshal()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+w.addrs[next%len(w.addrs)]+"/api/v1/write",
				bytes.NewReader(snappy.Encode(nil, raw)))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Content-Encoding", "snappy")
			req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
			resp, err := w.client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					w.mu.Lock()
					w.acked = append(w.acked, ts.UnixMilli())
					w.mu.Unlock()
					break
				}
			}
			w.mu.Lock()
			w.failed++
			w.mu.Unlock()
			next++
			select { // back off as an agent does, briefly
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}

func (w *ackedWriter) ackedCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// TestKilledOwnerLosesNoAcknowledgedSample runs three hubs at replication
// factor 2 while a writer writes a cluster's samples one at a time, with
// retries, and kills the cluster's first owner, where its writes land: it
// stops without leaving the ring, as a killed replica does. Writes fail
// until the others forget it and the ring names a new second owner; every
// sample acknowledged before, during and after is then queryable from each
// survivor, without a gap.
func TestKilledOwnerLosesNoAcknowledgedSample(t *testing.T) {
	agents, replicaCA := testbed.NewCA(t, "agents"), testbed.NewCA(t, "replicas")
	replicas, stops := rf2Replicas(t, agents, replicaCA)
	// The fleet settles first: each replica reads the others, as it does a
	// moment after they join (a replica joins the ring before its StoreAPI
	// answers).
	waitReadsPeers(t, replicas)
	const c = "c-kill"
	owners := ownersOf(t, replicas, c)
	victim := owners[0]
	var addrs []string
	for _, h := range replicas {
		addrs = append(addrs, h.AgentAddr().String())
	}
	w := &ackedWriter{client: agentClient(t, agents, c), addrs: addrs, t0: time.Now().Add(-10 * time.Minute).Truncate(time.Second)}
	w.client.Timeout = 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitAcked := func(n int) {
		testutil.Eventually(t, 30*time.Second, func() error {
			if got := w.ackedCount(); got < n {
				return fmt.Errorf("%d samples acknowledged, want %d", got, n)
			}
			return nil
		})
	}
	waitAcked(100)
	i := slices.Index(replicas, victim)
	victim.Ring().KeepOnShutdown()
	killedAt, before := time.Now(), w.ackedCount()
	stops[i]()
	rest := slices.Delete(slices.Clone(replicas), i, i+1)
	waitPeers(t, rest)
	t.Logf("%s killed after %d acknowledged samples; the others forgot it %s later", victim.Ring().Self().ID, before, time.Since(killedAt))
	after := w.ackedCount()
	waitAcked(after + 100)
	cancel()
	<-done
	newOwners := ownersOf(t, rest, c)
	t.Logf("owners of %s: %s and %s, then %s and %s; %d samples acknowledged, %d attempts failed",
		c, owners[0].Ring().Self().ID, owners[1].Ring().Self().ID, newOwners[0].Ring().Self().ID, newOwners[1].Ring().Self().ID,
		len(w.acked), w.failed)

	last := w.acked[len(w.acked)-1]
	for _, h := range rest {
		v, _, err := hubAPI(t, h).Query(context.Background(), `rf2_probe{cluster="`+c+`"}[15m]`, time.UnixMilli(last).Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		held := map[int64]bool{}
		if m, ok := v.(model.Matrix); ok {
			for _, s := range m {
				for _, p := range s.Values {
					held[int64(p.Timestamp)] = true
				}
			}
		}
		var lost []int64
		for _, ts := range w.acked {
			if !held[ts] {
				lost = append(lost, ts)
			}
		}
		if len(lost) > 0 {
			t.Errorf("%s answers without %d of %d acknowledged samples, the first at %s", h.Ring().Self().ID, len(lost), len(w.acked),
				time.UnixMilli(lost[0]).Sub(w.t0))
		}
	}
}

// waitReadsPeers waits until every replica's queries read each other
// replica's StoreAPI (its peer set holds a connection to each).
func waitReadsPeers(t *testing.T, replicas []*Hub) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() error {
		for _, h := range replicas {
			mfs, err := h.registry.Gather()
			if err != nil {
				return err
			}
			read := 0.0
			for _, mf := range mfs {
				if mf.GetName() == "fleetpulse_hub_peers_thanos_store_nodes_grpc_connections" {
					for _, m := range mf.GetMetric() {
						read += m.GetGauge().GetValue()
					}
				}
			}
			if int(read) != len(replicas)-1 {
				return fmt.Errorf("%s reads %v peers, want %d", h.Ring().Self().ID, read, len(replicas)-1)
			}
		}
		return nil
	})
}
