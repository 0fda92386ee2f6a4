package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestReplicasAtReplicationFactor2LoseNothingToAKill runs the ring of
// TestReplicasTakeOverAKilledReplica at --ring.replication-factor=2, with
// the replication certificates, kills (SIGKILL) one replica that owns a
// real cluster, the controllers' leader if it owns one, and does not
// restart it: every write the replicas acknowledged to the simulated fleet,
// before and after the kill, is answered by each live replica's /api/v1,
// and each real agent's series has no gap at a live owner across the kill.
func TestReplicasAtReplicationFactor2LoseNothingToAKill(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startRingFleet(t, ringFleetOptions{name: "rf2", replicationFactor: 2, reals: 2, sims: 60})

	// Every cluster writes to two owners.
	var owners map[string][]string
	testutil.Eventually(t, 2*time.Minute, func() error {
		now := time.Now()
		h, err := holders(ctx, f.thanosURL, "k8s_cluster_info", now.Add(-5*time.Second), now)
		if err != nil {
			return err
		}
		if len(h) != f.clusters {
			return fmt.Errorf("%d clusters written in the last 5 s, want %d", len(h), f.clusters)
		}
		for c, at := range h {
			if len(at) != 2 {
				return fmt.Errorf("%s written in the last 5 s to %v, want two owners at replication factor 2", c, at)
			}
		}
		// The real agents have written for a while: the check after the
		// kill wants their samples from 3 s before it, and under load
		// they may join a moment before this.
		earlier, err := holders(ctx, f.thanosURL, `k8s_cluster_info{cluster=~"real-.*"}`, now.Add(-10*time.Second), now.Add(-5*time.Second))
		if err != nil {
			return err
		}
		for _, c := range f.realNames {
			if !slices.Equal(slices.Sorted(slices.Values(earlier[c])), slices.Sorted(slices.Values(h[c]))) {
				return fmt.Errorf("%s written 5–10 s ago to %v, now to %v: want the same two owners for a while", c, earlier[c], h[c])
			}
		}
		owners = h
		return nil
	})
	var leader *replica
	testutil.Eventually(t, 30*time.Second, func() error {
		if leader = f.set.leader(f.three); leader == nil {
			return fmt.Errorf("no replica leads the controllers")
		}
		return nil
	})
	victim := replicaByID(f.three, owners[f.realNames[0]][0])
	for _, c := range f.realNames {
		if slices.Contains(owners[c], leader.id) {
			victim = leader
		}
	}
	survivors := slices.DeleteFunc(slices.Clone(f.three), func(r *replica) bool { return r == victim })
	t.Logf("real clusters' owners %v; leader %s; killing %s", pick(owners, f.realNames), leader.id, victim.id)

	killedAt := time.Now()
	f.set.kill(victim)
	var leaderMoved, allWritten time.Duration
	live := promAPI(t, "http://"+survivors[0].httpAddr)
	q := fmt.Sprintf("count(count by (cluster) (timestamp(k8s_cluster_info) > %.3f))", float64(killedAt.UnixMilli())/1000)
	for deadline := killedAt.Add(time.Minute); (leaderMoved == 0 || allWritten == 0) && time.Now().Before(deadline); {
		now := time.Now()
		if leaderMoved == 0 && f.set.leader(survivors) != nil {
			leaderMoved = now.Sub(killedAt)
		}
		if allWritten == 0 {
			if got, err := instant(live, q, now); err == nil && got == fmt.Sprintf("{} %d", f.clusters) {
				allWritten = now.Sub(killedAt)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after kill -9 of %s at replication factor 2: controllers led after %s; all %d clusters written after the kill, "+
		"read through %s, after %s", victim.id, leaderMoved.Round(10*time.Millisecond), f.clusters, survivors[0].id,
		allWritten.Round(10*time.Millisecond))
	if allWritten == 0 || allWritten > 2*agentHeartbeat {
		t.Errorf("every cluster written after the kill %s after it, want within two heartbeat periods (%s; 0: never)", allWritten, 2*agentHeartbeat)
	}

	// Without the victim: every acknowledged write, at each live replica.
	for _, r := range survivors {
		assertAcked(t, ctx, "http://"+r.httpAddr, f.fleet, f.fleetStart)
	}

	// The real agents' samples, at each live owner they had before the
	// kill, from their first within 20 s before it (the agents may have
	// joined later) to 15 s after it.
	from, to := killedAt.Add(-20*time.Second), killedAt.Add(15*time.Second)
	testutil.Eventually(t, 45*time.Second, func() error {
		if time.Now().Before(to.Add(3 * time.Second)) {
			return fmt.Errorf("waiting for 15 s of writes after the kill")
		}
		got, err := samplesByReplica(ctx, f.thanosURL, `k8s_cluster_info{cluster=~"real-.*"}`, time.Since(from)+5*time.Second, time.Now())
		if err != nil {
			return err
		}
		for _, c := range f.realNames {
			for _, id := range owners[c] {
				if id == victim.id {
					continue
				}
				first, ok := firstSince(got[c][id], from.UnixMilli())
				if !ok || first > killedAt.Add(-3*time.Second).UnixMilli() {
					return fmt.Errorf("%s's samples at %s start at %s, want some from before %s's kill at %s",
						c, id, time.UnixMilli(first).Format(time.RFC3339Nano), victim.id, killedAt.Format(time.RFC3339Nano))
				}
				gap := maxGap(got[c][id], first, to.UnixMilli())
				if gap > 3*time.Second {
					return fmt.Errorf("%s's samples at %s have a %s gap around %s's kill (collection interval 1 s)", c, id, gap, victim.id)
				}
				t.Logf("%s at %s: longest gap between samples from %s before the kill to 15 s after it: %s",
					c, id, killedAt.Sub(time.UnixMilli(first)).Round(time.Second), gap)
			}
		}
		return nil
	})
}

// firstSince is the earliest of samples at or after from.
func firstSince(samples map[int64]bool, from int64) (int64, bool) {
	first, ok := int64(0), false
	for at := range samples {
		if at >= from && (!ok || at < first) {
			first, ok = at, true
		}
	}
	return first, ok
}

// pick is m restricted to keys.
func pick(m map[string][]string, keys []string) map[string][]string {
	out := make(map[string][]string, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}
