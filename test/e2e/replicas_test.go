package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
)

// TestReplicasTakeOverAKilledReplica runs three `fleetpulse hub` processes
// in a ring over memberlist on loopback, leader-elected on one test-bed
// control plane, with the real agents of three test-bed clusters and 300
// simulated clusters reaching them through one balanced address, a real
// Alertmanager and a stock thanos query over their StoreAPIs. It checks
// that thanos query and every replica's /api/v1 answer for the whole
// fleet; that the leader's controllers taint, by an AlertTaint, a cluster
// whose alert another replica evaluates; kills (SIGKILL) the controllers' leader, and an owner of a real
// cluster if the leader owns none, and measures how long the victims'
// clusters take to write at a new owner (within two agent heartbeat
// periods) and the controllers to move (within the Lease's duration and
// its retries); restarts them and finds every sample the hubs acknowledged;
// starts a fourth replica, which takes clusters over while writes go on;
// and checks that Alertmanager was notified of each cluster's alert once,
// never resolved, and that the killed owner's alerts are sent by a live
// replica.
func TestReplicasTakeOverAKilledReplica(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := startRingFleet(t, ringFleetOptions{name: "replicas", replicationFactor: 1, reals: 3, sims: 300})
	set, three, lb, thanosURL, hook, amURL, kube, fleet, fleetStart, realNames :=
		f.set, f.three, f.lb, f.thanosURL, f.hook, f.amURL, f.kube, f.fleet, f.fleetStart, f.realNames
	var err error

	// The whole fleet, through thanos query and through every replica.
	const clusters = 303
	apis := map[string]promv1.API{"thanos query": promAPI(t, thanosURL)}
	for _, r := range three {
		apis[r.id+"'s /api/v1"] = promAPI(t, "http://"+r.httpAddr)
	}
	wholeFleet := map[string]string{
		`count(count by (cluster) (k8s_cluster_info))`:                                fmt.Sprintf("{} %d", clusters),
		`count by (cluster) (k8s_cluster_info{cluster=~"real-.*"})`:                   `{cluster="real-0"} 1; {cluster="real-1"} 1; {cluster="real-2"} 1`,
		`count(ALERTS{alertname="FleetClusterReporting",alertstate="firing"})`:        fmt.Sprintf("{} %d", clusters),
		`count(count by (cluster) (k8s_cluster_info{k8s_cluster_version="v1.35.4"}))`: fmt.Sprintf("{} %d", clusters),
	}
	for q, want := range wholeFleet {
		for name, a := range apis {
			testutil.Eventually(t, 2*time.Minute, func() error {
				got, err := instant(a, q, time.Now())
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if got != want {
					return fmt.Errorf("%s through %s = %q, want %q (one hub holding the fleet)", q, name, got, want)
				}
				return nil
			})
		}
	}
	testutil.Eventually(t, time.Minute, func() error {
		if n := len(hook.snapshot()); n != clusters {
			return fmt.Errorf("Alertmanager notified %d clusters' alerts, want %d", n, clusters)
		}
		return nil
	})

	// Who owns the real clusters, and who leads the controllers.
	var owners map[string][]string
	testutil.Eventually(t, 30*time.Second, func() error {
		now := time.Now()
		owners, err = holders(ctx, thanosURL, `k8s_cluster_info{cluster=~"real-.*"}`, now.Add(-3*time.Second), now)
		if err != nil {
			return err
		}
		for _, c := range realNames {
			if len(owners[c]) != 1 {
				return fmt.Errorf("%s written recently to %v, want one owner at replication factor 1", c, owners[c])
			}
		}
		return nil
	})
	var leader *replica
	testutil.Eventually(t, 30*time.Second, func() error {
		if leader = set.leader(three); leader == nil {
			return fmt.Errorf("no replica leads the controllers")
		}
		return nil
	})
	// The leader's controllers act on an alert that another replica
	// evaluates: an AlertTaint on the alert of a cluster it does not own.
	var elsewhere string
	testutil.Eventually(t, 30*time.Second, func() error {
		now := time.Now()
		all, err := holders(ctx, thanosURL, `k8s_cluster_info`, now.Add(-3*time.Second), now)
		if err != nil {
			return err
		}
		for _, c := range slices.Sorted(maps.Keys(all)) {
			if len(all[c]) == 1 && all[c][0] != leader.id {
				elsewhere = c
				return nil
			}
		}
		return fmt.Errorf("no cluster written to a replica other than the leader %s", leader.id)
	})
	const elsewhereKey = "fleetpulse.io/e2e-alert-elsewhere"
	taintRule := &fleetv1.AlertTaint{ObjectMeta: metav1.ObjectMeta{Name: "alert-elsewhere"},
		Spec: fleetv1.AlertTaintSpec{AlertName: "FleetClusterReporting", MatchLabels: map[string]string{"cluster": elsewhere},
			Taint: fleetv1.Taint{Key: elsewhereKey, Effect: fleetv1.TaintNoSelect}}}
	if err := kube.Create(ctx, taintRule); err != nil {
		t.Fatal(err)
	}
	tainting := time.Now()
	waitTaint(t, kube, elsewhere, elsewhereKey)
	t.Logf("the leader %s tainted %s, whose alert another replica evaluates, %s after its AlertTaint was created",
		leader.id, elsewhere, time.Since(tainting).Round(time.Millisecond))
	if err := kube.Delete(ctx, taintRule); err != nil {
		t.Fatal(err)
	}

	victims := []*replica{leader}
	if !slices.ContainsFunc(realNames, func(c string) bool { return owners[c][0] == leader.id }) {
		victims = append(victims, replicaByID(three, owners[realNames[0]][0]))
	}
	var moved []string
	for _, c := range realNames {
		if slices.ContainsFunc(victims, func(v *replica) bool { return v.id == owners[c][0] }) {
			moved = append(moved, c)
		}
	}
	survivors := slices.DeleteFunc(slices.Clone(three), func(r *replica) bool { return slices.Contains(victims, r) })
	t.Logf("real clusters' owners %v; leader %s; killing %s", owners, leader.id, ids(victims))

	// kill -9: the leader's controllers and the victims' clusters move.
	killedAt := time.Now()
	for _, v := range victims {
		set.kill(v)
	}
	var (
		leaderMoved time.Duration
		landed      = map[string]time.Duration{}
		allLanded   time.Duration
	)
	deadline := killedAt.Add(time.Minute)
	for (leaderMoved == 0 || len(landed) < len(moved) || allLanded == 0) && time.Now().Before(deadline) {
		now := time.Now()
		if leaderMoved == 0 && set.leader(survivors) != nil {
			leaderMoved = now.Sub(killedAt)
		}
		if h, err := holders(ctx, thanosURL, `k8s_cluster_info{cluster=~"real-.*"}`, killedAt, now); err == nil {
			for _, c := range moved {
				if _, ok := landed[c]; !ok && len(h[c]) > 0 {
					landed[c] = now.Sub(killedAt)
				}
			}
		}
		if allLanded == 0 {
			q := fmt.Sprintf("count(count by (cluster) (timestamp(k8s_cluster_info) > %.3f))", float64(killedAt.UnixMilli())/1000)
			if got, err := instant(apis["thanos query"], q, now); err == nil && got == fmt.Sprintf("{} %d", clusters) {
				allLanded = now.Sub(killedAt)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after kill -9 of %s: controllers led again after %s (lease %s, retry %s); %v's writes at a new owner after %v; "+
		"all %d clusters written after the kill after %s (agent heartbeat period %s, ring heartbeat %s, timeout %s)",
		ids(victims), leaderMoved.Round(10*time.Millisecond), leaseDuration, retryPeriod, moved, roundAll(landed),
		clusters, allLanded.Round(10*time.Millisecond), agentHeartbeat, ringHeartbeat, ringTimeout)
	// A candidate takes the Lease a Lease duration after it last saw it
	// renewed (up to one try after the renewal), at its next try; client-go
	// spaces tries by the retry period plus up to 1.2 of it in jitter
	// (leaderelection.JitterFactor). The scrape of the gauge adds its lag.
	if bound := leaseDuration + 2*retryPeriod*22/10 + 500*time.Millisecond; leaderMoved == 0 || leaderMoved > bound {
		t.Errorf("controllers moved %s after the leader's kill, want within the lease duration and retries (%s; 0: never)", leaderMoved, bound)
	}
	for _, c := range moved {
		if d, ok := landed[c]; !ok || d > 2*agentHeartbeat {
			t.Errorf("%s's writes at a new owner %s after its owner's kill (landed: %v), want within two heartbeat periods (%s)", c, d, ok, 2*agentHeartbeat)
		}
	}
	if allLanded == 0 || allLanded > 2*agentHeartbeat {
		t.Errorf("every cluster written after the kill %s after it, want within two heartbeat periods (%s; 0: never)", allLanded, 2*agentHeartbeat)
	}

	// The victims come back on their data: every write the replicas
	// acknowledged is there, and the real agents' series have no gap.
	for _, v := range victims {
		set.start(v)
	}
	for _, v := range victims {
		set.waitReady(v)
	}
	restartedAt := time.Now()
	assertAcked(t, ctx, thanosURL, fleet, fleetStart)
	gaps := map[string]time.Duration{}
	testutil.Eventually(t, 30*time.Second, func() error {
		byReplica, err := samplesByReplica(ctx, thanosURL, `k8s_cluster_info{cluster=~"real-.*"}`, time.Since(killedAt)+30*time.Second, time.Now())
		if err != nil {
			return err
		}
		for _, c := range realNames {
			all := map[int64]bool{}
			for _, ts := range byReplica[c] {
				maps.Copy(all, ts)
			}
			// From the cluster's first sample in the 20 s before the kill:
			// its agent may have joined within them.
			from, ok := firstSince(all, killedAt.Add(-20*time.Second).UnixMilli())
			if !ok || from > killedAt.Add(-3*time.Second).UnixMilli() {
				return fmt.Errorf("%s's samples start at %s, want some from before the kill at %s",
					c, time.UnixMilli(from).Format(time.RFC3339Nano), killedAt.Format(time.RFC3339Nano))
			}
			to := restartedAt.UnixMilli()
			gap, start := maxGapAt(all, from, to)
			if gap > 3*time.Second {
				// Where it is, and who holds the samples on either side.
				end := start + gap.Milliseconds()
				sides := map[string]string{}
				for id, ts := range byReplica[c] {
					sides[id] = fmt.Sprintf("before %t, after %t", ts[start], ts[end])
				}
				return fmt.Errorf("%s's samples have a %s gap around the kill (collection interval 1 s), from %s after the kill (restart %s after it); holders %v",
					c, gap, time.UnixMilli(start).Sub(killedAt).Round(time.Millisecond), restartedAt.Sub(killedAt).Round(time.Millisecond), sides)
			}
			gaps[c] = gap
		}
		return nil
	})
	t.Logf("longest gap between samples from (up to) 20 s before the kill to the restart: %v", gaps)

	// A fourth replica joins: it takes clusters over, writes go on at their
	// owners, nothing acknowledged is lost.
	fourth := set.replicas[3]
	set.start(fourth)
	set.waitReady(fourth)
	lb.add(fourth.agentAddr)
	joinedAt := time.Now()
	before := fleet.Stats()
	var took []string
	testutil.Eventually(t, time.Minute, func() error {
		// Only the last few seconds: a cluster that moved earlier still
		// holds samples at its old owner from before it moved.
		now := time.Now()
		h, err := holders(ctx, thanosURL, "k8s_cluster_info", now.Add(-5*time.Second), now)
		if err != nil {
			return err
		}
		took = took[:0]
		for c, at := range h {
			if len(at) != 1 {
				return fmt.Errorf("%s written to %v in the last 5 s, want one owner", c, at)
			}
			if at[0] == fourth.id {
				took = append(took, c)
			}
		}
		if len(h) != clusters || len(took) == 0 {
			return fmt.Errorf("%d clusters written in the last 5 s, %d of them to the fourth replica; want %d, some to it", len(h), len(took), clusters)
		}
		return nil
	})
	after := fleet.Stats()
	sort.Strings(took)
	t.Logf("the fourth replica took %d clusters over within %s; simulated writes meanwhile %d, failed %d",
		len(took), time.Since(joinedAt).Round(100*time.Millisecond), after.Writes-before.Writes, after.WriteErrors-before.WriteErrors)
	assertAcked(t, ctx, thanosURL, fleet, fleetStart)

	// Alerts: each cluster's alert notified once and never resolved; the
	// moved real clusters' alerts sent again, after the kill, by a live
	// replica (their end time moves past what the victim gave them).
	for c, n := range hook.snapshot() {
		if n["firing"] != 1 || n["resolved"] != 0 {
			t.Errorf("Alertmanager's notifications of %s's alert: %v, want firing once and never resolved", c, n)
		}
	}
	waitAlertsNamed(t, amURL, "FleetClusterReporting", func(alerts []amAlert) bool {
		fresh := 0
		for _, a := range alerts {
			if slices.Contains(moved, a.Labels["cluster"]) && a.EndsAt.After(killedAt.Add(4*time.Minute)) {
				fresh++
			}
		}
		return len(alerts) == clusters && fresh == len(moved)
	})

	// The control plane saw every cluster through it all.
	testutil.Eventually(t, 30*time.Second, func() error {
		var list fleetv1.ManagedClusterList
		if err := kube.List(ctx, &list); err != nil {
			return err
		}
		available := 0
		for _, mc := range list.Items {
			if meta.IsStatusConditionTrue(mc.Status.Conditions, fleetv1.ConditionAvailable) {
				available++
			}
		}
		if available != clusters {
			return fmt.Errorf("%d of %d ManagedClusters Available, want %d", available, len(list.Items), clusters)
		}
		return nil
	})
}

// startRingAgent runs a real agent joining with a bootstrap token through
// the replicas' balanced address. Its exporter retries within a second,
// as its heartbeats do every period, so that a write that failed on a
// killed owner goes again once the ring names a new one.
func startRingAgent(t *testing.T, bin, hubURL, token, pin, name, kubeconfig string) {
	t.Helper()
	joinAgent(t, bin, hubURL, token, pin, name, kubeconfig, t.TempDir(),
		"--set=exporters.fleetpulse_hub.retry_on_failure.initial_interval=250ms",
		"--set=exporters.fleetpulse_hub.retry_on_failure.max_interval=1s")
}

// assertAcked waits until thanos query, over every replica's StoreAPI,
// holds a sample at each write the replicas acknowledged to the simulated
// fleet so far. A stock thanos query reads a restarted replica again only
// at gRPC's next reconnect attempt, up to two minutes apart after a long
// downtime (the hubs' own peer connections back off to 1 s at most), so
// the wait allows for that.
func assertAcked(t *testing.T, ctx context.Context, thanosURL string, fleet *fleetsim.Fleet, since time.Time) {
	t.Helper()
	acked := fleet.AckedWrites()
	writes := 0
	for _, ts := range acked {
		writes += len(ts)
	}
	testutil.Eventually(t, 3*time.Minute, func() error {
		got, err := samplesByCluster(ctx, thanosURL, `k8s_cluster_info{cluster=~"sim-.*"}`, time.Since(since)+time.Minute, time.Now())
		if err != nil {
			return err
		}
		missing, example := 0, ""
		for c, ts := range acked {
			for _, at := range ts {
				if !got[c][at] {
					missing++
					example = fmt.Sprintf("%s at %s", c, time.UnixMilli(at).Format(time.RFC3339Nano))
				}
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d acknowledged writes not queryable (e.g. %s)", missing, writes, example)
		}
		return nil
	})
	t.Logf("%d acknowledged writes of %d simulated clusters (%d samples), every one queryable", writes, len(acked), writes*fleetsim.SeriesPerCluster)
}

// maxGap is the longest time between consecutive samples in [from, to].
func maxGap(samples map[int64]bool, from, to int64) time.Duration {
	gap, _ := maxGapAt(samples, from, to)
	return gap
}

// maxGapAt is maxGap, and the time (milliseconds) the gap starts at.
func maxGapAt(samples map[int64]bool, from, to int64) (time.Duration, int64) {
	ts := []int64{from}
	for at := range samples {
		if at > from && at < to {
			ts = append(ts, at)
		}
	}
	ts = append(ts, to)
	slices.Sort(ts)
	var gap, start int64
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d > gap {
			gap, start = d, ts[i-1]
		}
	}
	return time.Duration(gap) * time.Millisecond, start
}

func replicaByID(rs []*replica, id string) *replica {
	for _, r := range rs {
		if r.id == id {
			return r
		}
	}
	return nil
}

func ids(rs []*replica) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.id)
	}
	return out
}

func roundAll(m map[string]time.Duration) map[string]time.Duration {
	out := make(map[string]time.Duration, len(m))
	for k, d := range m {
		out[k] = d.Round(10 * time.Millisecond)
	}
	return out
}
