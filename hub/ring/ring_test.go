package ring_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/dskit/services"

	"github.com/fleetpulse/fleetpulse/hub/ring"
)

// testConfig is a ring on loopback with short heartbeats, joining join.
func testConfig(id string, join ...string) ring.Config {
	cfg := ring.DefaultConfig()
	cfg.Enabled = true
	cfg.InstanceID = id
	cfg.HeartbeatPeriod, cfg.HeartbeatTimeout = 250*time.Millisecond, 3*time.Second
	cfg.Memberlist.TCPTransport.BindAddrs = []string{"127.0.0.1"}
	cfg.Memberlist.TCPTransport.BindPort = 0
	cfg.Memberlist.JoinMembers = join
	cfg.Memberlist.GossipInterval = 50 * time.Millisecond
	cfg.Memberlist.PushPullInterval = time.Second
	cfg.Memberlist.LeaveTimeout = time.Second
	cfg.Memberlist.BroadcastTimeoutForLocalUpdatesOnShutdown = time.Second
	return cfg
}

// startRing starts one replica's ring and makes it ACTIVE, as the hub
// does once it serves; the test stops it unless it did.
func startRing(t *testing.T, cfg ring.Config, n int) *ring.Ring {
	t.Helper()
	r := startJoining(t, cfg, n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Activate(ctx); err != nil {
		t.Fatalf("activate ring %s: %v", cfg.InstanceID, err)
	}
	return r
}

// startJoining starts one replica's ring, JOINING; the test stops it
// unless it did.
func startJoining(t *testing.T, cfg ring.Config, n int) *ring.Ring {
	t.Helper()
	self := ring.Instance{HTTPAddr: "127.0.0.1:" + strconv.Itoa(8440+n), GRPCAddr: "127.0.0.1:" + strconv.Itoa(10900+n)}
	r, err := ring.New(cfg, self, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("replica", cfg.InstanceID), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.StartAsync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.AwaitRunning(ctx); err != nil {
		t.Fatalf("start ring %s: %v", cfg.InstanceID, err)
	}
	t.Cleanup(func() { _ = services.StopAndAwaitTerminated(context.Background(), r) })
	return r
}

// startRings starts n replicas, each joining the first.
func startRings(t *testing.T, n int, rf int) []*ring.Ring {
	t.Helper()
	cfg := testConfig("hub-0")
	cfg.ReplicationFactor = rf
	rings := []*ring.Ring{startRing(t, cfg, 0)}
	seed := "127.0.0.1:" + strconv.Itoa(rings[0].MemberlistPort())
	for i := 1; i < n; i++ {
		cfg := testConfig(fmt.Sprintf("hub-%d", i), seed)
		cfg.ReplicationFactor = rf
		rings = append(rings, startRing(t, cfg, i))
	}
	return rings
}

var clusters = func() []string {
	var out []string
	for i := range 300 {
		out = append(out, fmt.Sprintf("cluster-%03d", i))
	}
	return out
}()

// ownersOf maps each cluster to its owners' IDs as r sees them.
func ownersOf(r *ring.Ring) (map[string][]string, error) {
	m := map[string][]string{}
	for _, c := range clusters {
		owners, err := r.Owners(c)
		if err != nil {
			return nil, err
		}
		for _, o := range owners {
			m[c] = append(m[c], o.ID)
		}
	}
	return m, nil
}

// waitAgree polls until every ring sees peers as its peers and every ring
// answers the same owners for every cluster, and returns those owners.
func waitAgree(t *testing.T, rings []*ring.Ring, peers []string) map[string][]string {
	t.Helper()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for {
		owners, why := agree(rings, peers)
		if why == "" {
			t.Logf("%d rings agree after %s", len(rings), time.Since(start))
			return owners
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rings do not agree within 20s: %s", why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func agree(rings []*ring.Ring, want []string) (map[string][]string, string) {
	var first map[string][]string
	for _, r := range rings {
		ps, err := r.Peers()
		if err != nil {
			return nil, err.Error()
		}
		var ids []string
		for _, p := range ps {
			ids = append(ids, p.ID)
		}
		if !slices.Equal(ids, want) {
			return nil, fmt.Sprintf("%s sees peers %v, want %v", r.Self().ID, ids, want)
		}
		owners, err := ownersOf(r)
		if err != nil {
			return nil, err.Error()
		}
		if first == nil {
			first = owners
			continue
		}
		for c, o := range owners {
			if !slices.Equal(o, first[c]) {
				return nil, fmt.Sprintf("%s says %s is owned by %v, %s by %v", r.Self().ID, c, o, rings[0].Self().ID, first[c])
			}
		}
	}
	return first, ""
}

func TestRingMembersAgreeOnOwners(t *testing.T) {
	for _, rf := range []int{1, 2} {
		t.Run(fmt.Sprintf("RF%d", rf), func(t *testing.T) {
			rings := startRings(t, 3, rf)
			owners := waitAgree(t, rings, []string{"hub-0", "hub-1", "hub-2"})
			perReplica := map[string]int{}
			for c, o := range owners {
				if len(o) != rf {
					t.Fatalf("%s has owners %v, want %d", c, o, rf)
				}
				for _, id := range o {
					perReplica[id]++
				}
			}
			// Every replica owns a share of the fleet.
			for _, id := range []string{"hub-0", "hub-1", "hub-2"} {
				if perReplica[id] < len(clusters)*rf/10 {
					t.Errorf("%s owns %d of %d clusters at RF %d: %v", id, perReplica[id], len(clusters), rf, perReplica)
				}
			}
			// Owns agrees with Owners on each replica, and the owners'
			// addresses are the ones they registered.
			for _, r := range rings {
				for _, c := range clusters[:50] {
					os, _ := r.Owners(c)
					if got, want := r.Owns(c), slices.ContainsFunc(os, func(in ring.Instance) bool { return in.ID == r.Self().ID }); got != want {
						t.Fatalf("%s: Owns(%s) = %v, owners %v", r.Self().ID, c, got, os)
					}
				}
				ps, _ := r.Peers()
				for i, p := range ps {
					if p != rings[i].Self() {
						t.Fatalf("%s sees peer %+v, which registered as %+v", r.Self().ID, p, rings[i].Self())
					}
				}
			}
			t.Logf("clusters owned per replica at RF %d: %v", rf, perReplica)
		})
	}
}

func TestLeavingReplicaHandsItsClustersOn(t *testing.T) {
	rings := startRings(t, 3, 1)
	before := waitAgree(t, rings, []string{"hub-0", "hub-1", "hub-2"})
	if err := services.StopAndAwaitTerminated(context.Background(), rings[2]); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	after := waitAgree(t, rings[:2], []string{"hub-0", "hub-1"})
	t.Logf("the two others agree on new owners %s after hub-2 left", time.Since(start))
	moved := 0
	for c, o := range before {
		switch {
		case o[0] == "hub-2":
			moved++
		case !slices.Equal(o, after[c]):
			// Clusters of the replicas that stay stay where they are.
			t.Errorf("%s moved from %v to %v though its owner stayed", c, o, after[c])
		}
	}
	if moved == 0 {
		t.Fatal("hub-2 owned no cluster")
	}
}

func TestKilledReplicaIsForgotten(t *testing.T) {
	rings := startRings(t, 3, 1)
	waitAgree(t, rings, []string{"hub-0", "hub-1", "hub-2"})
	// Its lifecycler stops without leaving the ring, as a killed process
	// does: its entry stays, its heartbeat ages.
	start := time.Now()
	rings[2].Kill()
	waitAgree(t, rings[:2], []string{"hub-0", "hub-1"})
	t.Logf("the others own hub-2's clusters %s after it stopped heartbeating", time.Since(start))
}

// TestJoiningReplicaOwnsOnceActive starts a third replica that has not
// turned ACTIVE (its hub does not serve yet): the two others and itself see
// only the two as peers and owners; once it is ACTIVE, all three agree that
// it owns a share.
func TestJoiningReplicaOwnsOnceActive(t *testing.T) {
	rings := startRings(t, 2, 1)
	waitAgree(t, rings, []string{"hub-0", "hub-1"})
	joining := startJoining(t, testConfig("hub-2", "127.0.0.1:"+strconv.Itoa(rings[0].MemberlistPort())), 2)
	all := append(slices.Clone(rings), joining)
	owners := waitAgree(t, all, []string{"hub-0", "hub-1"})
	for c, o := range owners {
		if slices.Contains(o, "hub-2") {
			t.Fatalf("%s is owned by %v while hub-2 is JOINING", c, o)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := joining.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	owned := 0
	for _, o := range waitAgree(t, all, []string{"hub-0", "hub-1", "hub-2"}) {
		if slices.Contains(o, "hub-2") {
			owned++
		}
	}
	if owned == 0 {
		t.Fatal("hub-2 owns no cluster once ACTIVE")
	}
}

func TestSingleOwnsEverything(t *testing.T) {
	self := ring.Instance{ID: "hub", HTTPAddr: "127.0.0.1:8443"}
	r := ring.Single(self)
	for _, c := range clusters[:10] {
		if !r.Owns(c) {
			t.Fatalf("a single hub does not own %s", c)
		}
		if os, err := r.Owners(c); err != nil || len(os) != 1 || os[0] != self {
			t.Fatalf("Owners(%s) = %v, %v", c, os, err)
		}
	}
	if ps, err := r.Peers(); err != nil || len(ps) != 1 || ps[0] != self {
		t.Fatalf("Peers() = %v, %v", ps, err)
	}
}
