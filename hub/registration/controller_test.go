package registration

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// TestAvailabilityFollowsHeartbeats walks one cluster through its life on
// the clock: no heartbeat yet (Unknown, tainted unreachable), heartbeating
// (Available, untainted, a Lease), an agent that cannot reach its
// apiserver (False, tainted unavailable), and silence past the grace period
// (Unknown, tainted unreachable from when the silence began). A taint
// someone else set stays throughout.
func TestAvailabilityFollowsHeartbeats(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	maintenance := fleetv1.Taint{Key: "example.com/maintenance", Effect: fleetv1.TaintNoSelect, TimeAdded: metav1.NewTime(t0.Add(-time.Hour))}
	require.NoError(t, h.kube.Create(ctx, accepted("life", maintenance)))
	manual := maintenance.TimeAdded.UTC()

	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		if !slices.Contains(mc.Finalizers, finalizer) {
			return fmt.Errorf("no finalizer: %v", mc.Finalizers)
		}
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionJoined, metav1.ConditionFalse, "WaitingForAgent", "accepted; waiting for the agent's first heartbeat")
			},
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed, "no heartbeat yet")
			},
			func() error {
				return taintsAre(mc, map[string]time.Time{maintenance.Key: manual, fleetv1.TaintUnreachable: t0})
			},
		)
	})
	ns := &corev1.Namespace{}
	require.NoError(t, h.kube.Get(ctx, client.ObjectKey{Name: "life"}, ns))
	require.Equal(t, "life", ns.Labels[fleetv1.LabelCluster], "the cluster's namespace names it")

	// The first heartbeat: Available, the unreachable taint gone, the
	// heartbeat's time in the status and in a Lease.
	h.step(time.Second)
	first := h.clock.Now()
	h.heartbeat("life", true, "")
	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
					"heartbeats arrive and the agent reaches its cluster's apiserver")
			},
			func() error {
				return hasCondition(mc, fleetv1.ConditionJoined, metav1.ConditionTrue, fleetv1.ReasonAccepted, "accepted, and the agent holds its certificate")
			},
			func() error { return taintsAre(mc, map[string]time.Time{maintenance.Key: manual}) },
			func() error {
				if mc.Status.AgentVersion != "v1.2.3" || mc.Status.LastHeartbeatTime == nil || !mc.Status.LastHeartbeatTime.Time.Equal(first) {
					return fmt.Errorf("agent version %q, last heartbeat %v; want v1.2.3 at %s", mc.Status.AgentVersion, mc.Status.LastHeartbeatTime, first)
				}
				return nil
			},
		)
	})
	testutil.Eventually(t, 10*time.Second, func() error { return leaseRenewedAt(h, "life", first) })

	// Heartbeats within the refresh interval cost no Lease write; the
	// first one after it does.
	for range testRefresh/(testPeriod*time.Second) - 1 {
		h.step(testPeriod * time.Second)
		h.heartbeat("life", true, "")
	}
	testutil.Consistently(t, time.Second, func() error { return leaseRenewedAt(h, "life", first) })
	h.step(testPeriod * time.Second)
	renewed := h.clock.Now()
	h.heartbeat("life", true, "")
	testutil.Eventually(t, 10*time.Second, func() error { return leaseRenewedAt(h, "life", renewed) })

	// The agent reports its apiserver unreachable: False, and tainted
	// unavailable, not unreachable.
	h.step(time.Second)
	troubleAt := h.clock.Now()
	h.heartbeat("life", false, "dial tcp 10.0.0.1:6443: connect: connection refused")
	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionFalse, fleetv1.ReasonClusterAPIUnreachable,
					"the agent cannot reach its cluster's apiserver: dial tcp 10.0.0.1:6443: connect: connection refused")
			},
			func() error {
				return taintsAre(mc, map[string]time.Time{maintenance.Key: manual, fleetv1.TaintUnavailable: troubleAt})
			},
		)
	})
	h.step(time.Second)
	h.heartbeat("life", true, "")
	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
					"heartbeats arrive and the agent reaches its cluster's apiserver")
			},
			func() error { return taintsAre(mc, map[string]time.Time{maintenance.Key: manual}) },
		)
	})

	// Silence past the grace period: Unknown, tainted unreachable from the
	// pass that saw it; the taint keeps that time while the silence lasts.
	h.step(testGrace + time.Second)
	silentAt := h.clock.Now()
	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed,
					fmt.Sprintf("no heartbeat for over %s", testGrace))
			},
			func() error {
				return taintsAre(mc, map[string]time.Time{maintenance.Key: manual, fleetv1.TaintUnreachable: silentAt})
			},
		)
	})
	h.step(time.Minute)
	testutil.Consistently(t, time.Second, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := h.kube.Get(ctx, client.ObjectKey{Name: "life"}, mc); err != nil {
			return err
		}
		return taintsAre(mc, map[string]time.Time{maintenance.Key: manual, fleetv1.TaintUnreachable: silentAt})
	})

	// The agent comes back.
	h.heartbeat("life", true, "")
	h.waitCluster("life", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
					"heartbeats arrive and the agent reaches its cluster's apiserver")
			},
			func() error { return taintsAre(mc, map[string]time.Time{maintenance.Key: manual}) },
		)
	})
}

// leaseRenewedAt checks the cluster's Lease: renewed at at, for the
// refresh interval and the grace period after it.
func leaseRenewedAt(h *harness, cluster string, at time.Time) error {
	l, err := h.lease(cluster)
	if err != nil {
		return err
	}
	want := int32((testRefresh + testGrace).Seconds())
	if l.Spec.RenewTime == nil || !l.Spec.RenewTime.Time.Equal(at) || ptr.Deref(l.Spec.LeaseDurationSeconds, 0) != want {
		return fmt.Errorf("lease of %s renewed at %v for %v s, want %s for %v s", cluster, l.Spec.RenewTime, ptr.Deref(l.Spec.LeaseDurationSeconds, 0), at, want)
	}
	return nil
}

// TestLeaseCarriesHeartbeatsAcrossRestart: a hub that starts fresh takes a
// cluster's last heartbeat from its Lease, so the cluster neither flaps
// Unknown nor stays Available once that heartbeat is older than the grace
// period.
func TestLeaseCarriesHeartbeatsAcrossRestart(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	require.NoError(t, h.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "restarted",
		Labels: map[string]string{fleetv1.LabelCluster: "restarted"}}}))
	last := t0.Add(-10 * time.Second)
	require.NoError(t, h.kube.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "restarted", Name: leaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("restarted"), LeaseDurationSeconds: ptr.To(int32((testRefresh + testGrace).Seconds())),
			RenewTime: &metav1.MicroTime{Time: last}}}))
	require.NoError(t, h.kube.Create(ctx, accepted("restarted")))

	h.waitCluster("restarted", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
					"heartbeats arrive and the agent reaches its cluster's apiserver")
			},
			func() error { return taintsAre(mc, map[string]time.Time{}) },
		)
	})
	// A time read back from the Lease is not written back to it.
	require.NoError(t, leaseRenewedAt(h, "restarted", last))

	h.step(testGrace)
	h.waitCluster("restarted", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed,
					fmt.Sprintf("no heartbeat for over %s", testGrace))
			},
			func() error { return taintsAre(mc, map[string]time.Time{fleetv1.TaintUnreachable: h.clock.Now()}) },
		)
	})
}

// TestRestartKeepsAvailableClusters: a hub that starts fresh gives a
// cluster it last wrote Available a grace period from its start, even when
// the cluster's Lease (renewed only once per refresh) is older than that:
// the cluster does not flap Unknown, and goes Unknown once that grace runs
// out without a heartbeat.
func TestRestartKeepsAvailableClusters(t *testing.T) {
	ctx := context.Background()
	kube := controlplane.Start(t).Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "was-available",
		Labels: map[string]string{fleetv1.LabelCluster: "was-available"}}}))
	last := t0.Add(-testRefresh)
	require.NoError(t, kube.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: "was-available", Name: leaseName},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("was-available"), LeaseDurationSeconds: ptr.To(int32((testRefresh + testGrace).Seconds())),
			RenewTime: &metav1.MicroTime{Time: last}}}))
	mc := accepted("was-available")
	require.NoError(t, kube.Create(ctx, mc))
	mc.Status.Conditions = []metav1.Condition{{Type: fleetv1.ConditionAvailable, Status: metav1.ConditionTrue, Reason: fleetv1.ReasonHeartbeating,
		Message: "heartbeats arrive and the agent reaches its cluster's apiserver", ObservedGeneration: mc.Generation, LastTransitionTime: metav1.NewTime(last)}}
	require.NoError(t, kube.Status().Update(ctx, mc))

	h := startHarness(t)
	available := func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
					"heartbeats arrive and the agent reaches its cluster's apiserver")
			},
			func() error { return taintsAre(mc, map[string]time.Time{}) },
		)
	}
	h.waitCluster("was-available", func(mc *fleetv1.ManagedCluster) error {
		if _, ok := h.s.tracker.get("was-available"); !ok {
			return errors.New("not tracked yet")
		}
		return available(mc)
	})
	testutil.Consistently(t, time.Second, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := h.kube.Get(ctx, client.ObjectKey{Name: "was-available"}, mc); err != nil {
			return err
		}
		return available(mc)
	})

	h.step(testGrace + time.Second)
	h.waitCluster("was-available", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed,
					fmt.Sprintf("no heartbeat for over %s", testGrace))
			},
			func() error { return taintsAre(mc, map[string]time.Time{fleetv1.TaintUnreachable: h.clock.Now()}) },
		)
	})
}

// TestPendingAcceptance: a registered cluster that is not accepted waits,
// says so, and gets no namespace.
func TestPendingAcceptance(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	require.NoError(t, h.kube.Create(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "pending"}}))
	h.waitCluster("pending", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionJoined, metav1.ConditionFalse, fleetv1.ReasonPendingAcceptance,
					"the cluster registered and waits for acceptance")
			},
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonPendingAcceptance, "not accepted")
			},
		)
	})
	err := h.kube.Get(ctx, client.ObjectKey{Name: "pending"}, &corev1.Namespace{})
	require.True(t, apierrors.IsNotFound(err), "namespace of a cluster not accepted: %v", err)
}

// TestInventoryWrittenToStatus: what the cluster's telemetry says about it
// (version, platform, nodes, capacity) reaches its status and its
// ClusterProfile, and follows when it changes.
func TestInventoryWrittenToStatus(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	setNodes := func(ready float64) {
		h.store.set(`sum by (cluster, k8s_node_condition_ready) (k8s_cluster_node_count)`,
			sample(ready, "cluster", "inv", "k8s_node_condition_ready", "true"),
			sample(4-ready, "cluster", "inv", "k8s_node_condition_ready", "false"))
	}
	h.store.set(`max by (cluster, k8s_cluster_version, k8s_cluster_platform) (k8s_cluster_info)`,
		sample(1, "cluster", "inv", "k8s_cluster_version", "v1.35.4", "k8s_cluster_platform", "kwok"))
	setNodes(3)
	h.store.set(`sum by (cluster) (k8s_cluster_capacity_cpu)`, sample(8, "cluster", "inv"))
	h.store.set(`sum by (cluster) (k8s_cluster_allocatable_cpu)`, sample(7.5, "cluster", "inv"))
	h.store.set(`sum by (cluster) (k8s_cluster_capacity_memory_bytes)`, sample(32<<30, "cluster", "inv"))
	h.store.set(`sum by (cluster) (k8s_cluster_allocatable_pods)`, sample(110, "cluster", "inv"))
	require.NoError(t, h.kube.Create(ctx, accepted("inv")))
	h.heartbeat("inv", true, "")

	h.waitCluster("inv", func(mc *fleetv1.ManagedCluster) error {
		st := mc.Status
		got := fmt.Sprintf("version %s, platform %s, nodes %d/%d, capacity cpu %s memory %s, allocatable cpu %s pods %s",
			st.Version.Kubernetes, st.Platform, st.Nodes.Ready, st.Nodes.Total,
			ptr.To(st.Capacity[corev1.ResourceCPU]), ptr.To(st.Capacity[corev1.ResourceMemory]),
			ptr.To(st.Allocatable[corev1.ResourceCPU]), ptr.To(st.Allocatable[corev1.ResourcePods]))
		if want := "version v1.35.4, platform kwok, nodes 3/4, capacity cpu 8 memory 32Gi, allocatable cpu 7500m pods 110"; got != want {
			return fmt.Errorf("status says %s; want %s", got, want)
		}
		return nil
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		p := &cpv1.ClusterProfile{}
		if err := h.kube.Get(ctx, client.ObjectKey{Namespace: h.s.cfg.Namespace, Name: "inv"}, p); err != nil {
			return err
		}
		props := map[string]string{}
		for _, pr := range p.Status.Properties {
			props[pr.Name] = pr.Value
		}
		healthy := meta.FindStatusCondition(p.Status.Conditions, cpv1.ConditionControlPlaneHealthy)
		if p.Status.Version.Kubernetes != "v1.35.4" || props["platform.fleetpulse.io"] != "kwok" || props["nodes.fleetpulse.io/ready"] != "3" ||
			props["allocatable.fleetpulse.io/cpu"] != "7500m" || healthy == nil || healthy.Status != metav1.ConditionTrue {
			return fmt.Errorf("cluster profile: version %q, properties %v, healthy %+v", p.Status.Version.Kubernetes, props, healthy)
		}
		return nil
	})

	// A node turns Ready.
	setNodes(4)
	h.waitCluster("inv", func(mc *fleetv1.ManagedCluster) error {
		if mc.Status.Nodes != (fleetv1.NodeCounts{Total: 4, Ready: 4}) {
			return fmt.Errorf("nodes %+v, want 4 of 4 ready", mc.Status.Nodes)
		}
		return nil
	})
}

// TestDeregistration: deleting a ManagedCluster removes what the hub made
// for it (its ClusterProfile and namespace, not a namespace it did not
// make), forgets its heartbeats, tells the OnDeregistered hooks, and lets it
// go.
func TestDeregistration(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	// A namespace of that name that the hub did not make.
	require.NoError(t, h.kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "theirs"}}))
	for _, name := range []string{"leaving", "theirs"} {
		require.NoError(t, h.kube.Create(ctx, accepted(name)))
		h.heartbeat(name, true, "")
	}
	for _, name := range []string{"leaving", "theirs"} {
		testutil.Eventually(t, 10*time.Second, func() error {
			return h.kube.Get(ctx, client.ObjectKey{Namespace: h.s.cfg.Namespace, Name: name}, &cpv1.ClusterProfile{})
		})
		require.False(t, h.wasDeregistered(name), "%s deregistered before it was deleted", name)
	}

	for _, name := range []string{"leaving", "theirs"} {
		require.NoError(t, h.kube.Delete(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}))
	}
	for _, name := range []string{"leaving", "theirs"} {
		testutil.Eventually(t, 10*time.Second, func() error {
			if err := h.kube.Get(ctx, client.ObjectKey{Name: name}, &fleetv1.ManagedCluster{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("ManagedCluster %s still there (%v)", name, err)
			}
			if err := h.kube.Get(ctx, client.ObjectKey{Namespace: h.s.cfg.Namespace, Name: name}, &cpv1.ClusterProfile{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("ClusterProfile %s still there (%v)", name, err)
			}
			if !h.wasDeregistered(name) {
				return fmt.Errorf("the OnDeregistered hook was not told of %s", name)
			}
			return nil
		})
		if _, ok := h.s.tracker.get(name); ok {
			t.Errorf("%s's heartbeats are still tracked after deregistration", name)
		}
	}
	ns := &corev1.Namespace{}
	err := h.kube.Get(ctx, client.ObjectKey{Name: "leaving"}, ns)
	require.True(t, apierrors.IsNotFound(err) || ns.DeletionTimestamp != nil, "the namespace the hub made for the cluster is kept: %v", err)
	require.NoError(t, h.kube.Get(ctx, client.ObjectKey{Name: "theirs"}, ns))
	require.Nil(t, ns.DeletionTimestamp, "a namespace the hub did not make was deleted")
}

// TestClusterSetCountsMembers: a ClusterSet's status counts the clusters
// labelled with its name, and says when it has none.
func TestClusterSetCountsMembers(t *testing.T) {
	h := startHarness(t)
	ctx := context.Background()
	require.NoError(t, h.kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "counted"}}))
	waitSet := func(clusters int32, status metav1.ConditionStatus, reason, message string) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			set := &fleetv1.ClusterSet{}
			if err := h.kube.Get(ctx, client.ObjectKey{Name: "counted"}, set); err != nil {
				return err
			}
			c := meta.FindStatusCondition(set.Status.Conditions, "Empty")
			if set.Status.Clusters != clusters || c == nil || c.Status != status || c.Reason != reason || c.Message != message {
				return fmt.Errorf("set: %d clusters, Empty %+v; want %d, %s %s %q", set.Status.Clusters, c, clusters, status, reason, message)
			}
			return nil
		})
	}
	waitSet(0, metav1.ConditionTrue, "NoClusters", "no managed cluster belongs to the set")
	for _, name := range []string{"member-1", "member-2"} {
		mc := accepted(name)
		mc.Labels = map[string]string{fleetv1.LabelClusterSet: "counted"}
		require.NoError(t, h.kube.Create(ctx, mc))
	}
	waitSet(2, metav1.ConditionFalse, "HasClusters", "2 clusters")
}
