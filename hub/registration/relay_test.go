package registration

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	hubcp "github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// startFollower runs registration on a second manager that stays a
// follower: the controllers' Lease is held by another replica for longer
// than the test. Its gateways' heartbeats are relayed to the leader.
func startFollower(t *testing.T, h *harness) *Service {
	t.Helper()
	cp := controlplane.Start(t)
	ctx := context.Background()
	err := h.kube.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: controlplane.Namespace, Name: hubcp.LeaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("another-replica"), LeaseDurationSeconds: ptr.To(int32(3600)),
			RenewTime: &metav1.MicroTime{Time: time.Now()}, AcquireTime: &metav1.MicroTime{Time: time.Now()}}})
	if err != nil {
		require.NoError(t, client.IgnoreAlreadyExists(err))
	}
	cfg := h.s.cfg
	planeCfg := hubcp.DefaultConfig()
	planeCfg.LeaderElect = true
	plane, err := hubcp.New(cp.RESTConfig, planeCfg, cfg.Namespace, testutil.Logger(t, slog.LevelWarn), nil, CacheByObject(cfg))
	require.NoError(t, err)
	s, err := Setup(plane.Manager(), cfg, nil, h.store.query, nil, testutil.Logger(t, slog.LevelWarn), prometheus.NewRegistry())
	require.NoError(t, err)
	s.clock = h.clock
	s.SetLeading(plane.Leading)
	testutil.Run(t, plane.Run, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return plane.WaitReady(ctx)
	})
	require.False(t, plane.Leading(), "the follower leads")
	return s
}

// TestHeartbeatsThroughAFollowerKeepAClusterAvailable: a cluster whose
// agent heartbeats only to a replica that does not lead the controllers
// stays Available on the leader far past its grace, follows what those
// heartbeats say (its apiserver unreachable, then reachable again), and
// goes Unknown once they stop.
func TestHeartbeatsThroughAFollowerKeepAClusterAvailable(t *testing.T) {
	h := startHarness(t)
	follower := startFollower(t, h)
	ctx := context.Background()
	const name = "through-follower"
	require.NoError(t, h.kube.Create(ctx, accepted(name)))
	mc := accepted(name)
	heartbeat := func(reachable bool, apiErr string) {
		follower.heard(ctx, mc, beat{At: h.clock.Now(), ClusterAPIReachable: reachable, ClusterAPIError: apiErr,
			AgentVersion: "v1.2.3", Grace: testGrace})
	}
	// The leader has heard the follower's latest heartbeat.
	leaderHeard := func() error {
		b, ok := h.s.tracker.get(name)
		if !ok || !b.At.Equal(h.clock.Now()) {
			return fmt.Errorf("the leader's last heartbeat of %s: %v (known: %t), want %s", name, b.At, ok, h.clock.Now())
		}
		return nil
	}
	available := func(mc *fleetv1.ManagedCluster) error {
		return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
			"heartbeats arrive and the agent reaches its cluster's apiserver")
	}

	// The first relay goes through whether or not the leader has made the
	// cluster's namespace yet: the follower makes it if needed.
	require.NoError(t, follower.relay(ctx, mc, beat{At: h.clock.Now(), ClusterAPIReachable: true, AgentVersion: "v1.2.3", Grace: testGrace}))
	h.waitCluster(name, available)
	// Five periods, past the grace of three, with heartbeats through the
	// follower only.
	for range 5 {
		h.step(testPeriod * time.Second)
		heartbeat(true, "")
		testutil.Eventually(t, 10*time.Second, leaderHeard)
	}
	h.waitCluster(name, available)

	h.step(testPeriod * time.Second)
	heartbeat(false, "connection refused")
	h.waitCluster(name, func(mc *fleetv1.ManagedCluster) error {
		return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionFalse, fleetv1.ReasonClusterAPIUnreachable,
			"the agent cannot reach its cluster's apiserver: connection refused")
	})
	h.step(testPeriod * time.Second)
	heartbeat(true, "")
	h.waitCluster(name, available)

	// The agent falls silent: the leader marks the cluster Unknown.
	h.step(testGrace + time.Second)
	h.waitCluster(name, func(mc *fleetv1.ManagedCluster) error {
		return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed,
			fmt.Sprintf("no heartbeat for over %s", testGrace))
	})
}
