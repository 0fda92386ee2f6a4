package hub

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/fleetpulse/fleetpulse/hub/ring"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// ringConfig turns the ring on for a replica on loopback, joining join,
// with short heartbeats.
func ringConfig(cfg Config, id string, join ...string) Config {
	cfg.Ring.Enabled = true
	cfg.Ring.InstanceID = id
	cfg.Ring.HeartbeatPeriod, cfg.Ring.HeartbeatTimeout = 250*time.Millisecond, 3*time.Second
	cfg.Ring.Memberlist.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.Ring.Memberlist.TCPTransport.BindPort = 0
	cfg.Ring.Memberlist.JoinMembers = join
	cfg.Ring.Memberlist.GossipInterval = 50 * time.Millisecond
	cfg.Ring.Memberlist.LeaveTimeout = time.Second
	cfg.Ring.Memberlist.BroadcastTimeoutForLocalUpdatesOnShutdown = time.Second
	cfg.GRPCListenAddress = "127.0.0.1:0"
	cfg.Store.Replica = id
	cfg.PeerRefreshInterval = 200 * time.Millisecond
	return cfg
}

// ringReplicas runs n hubs in a ring on loopback, each joining the first,
// and waits until each sees all n as its peers with the addresses they
// listen on. Each replica's stop function stops it.
func ringReplicas(t *testing.T, ca *testbed.CA, n int) ([]*Hub, []func()) {
	t.Helper()
	return ringReplicasWith(t, ca, n, nil)
}

// ringReplicasWith is ringReplicas with each replica's configuration
// changed by configure, when given.
func ringReplicasWith(t *testing.T, ca *testbed.CA, n int, configure func(*Config)) ([]*Hub, []func()) {
	t.Helper()
	var (
		replicas []*Hub
		stops    []func()
	)
	for range n {
		h, stop := addRingReplica(t, ca, replicas, configure)
		replicas, stops = append(replicas, h), append(stops, stop)
	}
	waitPeers(t, replicas)
	return replicas, stops
}

// addRingReplica runs one more replica, hub-<len(replicas)>, joining the
// first of replicas, and waits until it is ready.
func addRingReplica(t *testing.T, ca *testbed.CA, replicas []*Hub, configure func(*Config)) (*Hub, func()) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("localhost")
	cfg.AgentTLS.ClientCAFile = ca.CertFile
	cfg.NoShippedRules = true
	cfg.Store.Dir = t.TempDir()
	var join []string
	if len(replicas) > 0 {
		join = []string{"127.0.0.1:" + strconv.Itoa(replicas[0].Ring().MemberlistPort())}
	}
	id := fmt.Sprintf("hub-%d", len(replicas))
	cfg = ringConfig(cfg, id, join...)
	if configure != nil {
		configure(&cfg)
	}
	h, stop := runHub(t, cfg)
	testutil.Eventually(t, 10*time.Second, func() error {
		if !h.Ready() {
			return fmt.Errorf("%s is not ready", id)
		}
		return nil
	})
	return h, stop
}

// waitPeers polls until every replica sees exactly replicas as its peers.
func waitPeers(t *testing.T, replicas []*Hub) {
	t.Helper()
	var want []ring.Instance
	for _, h := range replicas {
		want = append(want, ring.Instance{ID: h.Ring().Self().ID, HTTPAddr: h.AgentAddr().String(), GRPCAddr: h.GRPCAddr().String()})
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		for _, h := range replicas {
			peers, err := h.Ring().Peers()
			if err != nil {
				return err
			}
			if !slices.Equal(peers, want) {
				return fmt.Errorf("%s sees peers %v, want %v", h.Ring().Self().ID, peers, want)
			}
		}
		return nil
	})
}

// ownerOf is the one replica that owns cluster, checking that every
// replica agrees.
func ownerOf(t *testing.T, replicas []*Hub, cluster string) *Hub {
	t.Helper()
	var owner *Hub
	for _, h := range replicas {
		if h.Ring().Owns(cluster) {
			if owner != nil {
				t.Fatalf("%s is owned by %s and %s at replication factor 1", cluster, owner.Ring().Self().ID, h.Ring().Self().ID)
			}
			owner = h
		}
	}
	if owner == nil {
		t.Fatalf("no replica owns %s", cluster)
	}
	return owner
}

// TestReplicasInARingReadEachOther runs three hubs in a ring over
// memberlist on loopback: they agree on every cluster's owner, and each
// replica's /api/v1 answers for the clusters written to the others, found
// through the ring.
func TestReplicasInARingReadEachOther(t *testing.T) {
	ca := testbed.NewCA(t, "agents")
	replicas, _ := ringReplicas(t, ca, 3)
	clusters := []string{"c-0", "c-1", "c-2", "c-3", "c-4", "c-5", "c-6", "c-7"}
	now := time.Now().Truncate(time.Second)
	for i, c := range clusters {
		writeProbe(t, ca, ownerOf(t, replicas, c), c, i, now)
	}
	for _, h := range replicas {
		api := hubAPI(t, h)
		testutil.Eventually(t, 30*time.Second, func() error {
			v, _, err := api.Query(context.Background(), "count(count by (cluster) (fanout_probe))", now)
			if err != nil {
				return err
			}
			if vec, ok := v.(model.Vector); !ok || len(vec) != 1 || int(vec[0].Value) != len(clusters) {
				return fmt.Errorf("%s counts clusters %v, want %d", h.Ring().Self().ID, v, len(clusters))
			}
			return nil
		})
	}
}
