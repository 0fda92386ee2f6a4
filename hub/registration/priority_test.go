package registration

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestLossAheadOfRoutineWrites: with every routine write of the controller
// held (as an apiserver busy with them would), a cluster whose agent loses
// its apiserver still goes False and is tainted unavailable, and a silent
// cluster still goes Unknown and is tainted unreachable as soon as its grace
// runs out: availability transitions have a queue, workers and a client of
// their own, and are found from the heartbeats in memory.
func TestLossAheadOfRoutineWrites(t *testing.T) {
	held := &heldWriter{}
	h := startHarness(t, func(s *Service) {
		held.Client = s.writer
		s.writer = held
	})
	ctx := context.Background()
	for _, name := range []string{"prio-lost", "prio-broken"} {
		require.NoError(t, h.kube.Create(ctx, accepted(name)))
		h.heartbeat(name, true, "")
	}
	for _, name := range []string{"prio-lost", "prio-broken"} {
		h.waitCluster(name, func(mc *fleetv1.ManagedCluster) error {
			return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionTrue, fleetv1.ReasonHeartbeating,
				"heartbeats arrive and the agent reaches its cluster's apiserver")
		})
	}

	// Hold the controller's writes, and give it work: a cluster joining
	// needs its finalizer, namespace, status, Lease and profile written.
	held.hold()
	defer held.release()
	require.NoError(t, h.kube.Create(ctx, accepted("prio-new")))
	h.heartbeat("prio-new", true, "")
	testutil.Eventually(t, 10*time.Second, func() error {
		if held.waiting() == 0 {
			return errors.New("no routine write held yet")
		}
		return nil
	})

	h.step(testPeriod * time.Second)
	troubleAt := h.clock.Now()
	h.heartbeat("prio-broken", false, "dial tcp 10.0.0.2:6443: i/o timeout")
	h.waitCluster("prio-broken", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionFalse, fleetv1.ReasonClusterAPIUnreachable,
					"the agent cannot reach its cluster's apiserver: dial tcp 10.0.0.2:6443: i/o timeout")
			},
			func() error { return taintsAre(mc, map[string]time.Time{fleetv1.TaintUnavailable: troubleAt}) },
		)
	})

	// prio-lost has been silent since the start: past its grace now.
	h.step(testGrace)
	lostAt := h.clock.Now()
	h.heartbeat("prio-broken", false, "dial tcp 10.0.0.2:6443: i/o timeout")
	h.waitCluster("prio-lost", func(mc *fleetv1.ManagedCluster) error {
		return all(
			func() error {
				return hasCondition(mc, fleetv1.ConditionAvailable, metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed,
					"no heartbeat for over 30s")
			},
			func() error { return taintsAre(mc, map[string]time.Time{fleetv1.TaintUnreachable: lostAt}) },
		)
	})
	require.Positive(t, held.waiting(), "the controller's writes were let through meanwhile")
	mc := &fleetv1.ManagedCluster{}
	require.NoError(t, h.kube.Get(ctx, client.ObjectKey{Name: "prio-new"}, mc))
	require.Nil(t, meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionJoined), "the joining cluster's status was written meanwhile")

	// Let the controller go: it catches up, the joining cluster included.
	held.release()
	h.waitCluster("prio-new", func(mc *fleetv1.ManagedCluster) error {
		return hasCondition(mc, fleetv1.ConditionJoined, metav1.ConditionTrue, fleetv1.ReasonAccepted, "accepted, and the agent holds its certificate")
	})
}

// heldWriter holds every write while held, as an apiserver that does not
// get to them would, and counts the writes waiting.
type heldWriter struct {
	client.Client
	mu      sync.Mutex
	gate    chan struct{} // closed: writes go through
	blocked int
}

func (w *heldWriter) hold() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.gate = make(chan struct{})
}

func (w *heldWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.gate != nil {
		close(w.gate)
		w.gate = nil
	}
}

func (w *heldWriter) waiting() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.blocked
}

func (w *heldWriter) wait(ctx context.Context) error {
	w.mu.Lock()
	gate := w.gate
	if gate == nil {
		w.mu.Unlock()
		return nil
	}
	w.blocked++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.blocked--
		w.mu.Unlock()
	}()
	select {
	case <-gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *heldWriter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if err := w.wait(ctx); err != nil {
		return err
	}
	return w.Client.Create(ctx, obj, opts...)
}

func (w *heldWriter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if err := w.wait(ctx); err != nil {
		return err
	}
	return w.Client.Update(ctx, obj, opts...)
}

func (w *heldWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if err := w.wait(ctx); err != nil {
		return err
	}
	return w.Client.Patch(ctx, obj, patch, opts...)
}

func (w *heldWriter) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	if err := w.wait(ctx); err != nil {
		return err
	}
	return w.Client.Delete(ctx, obj, opts...)
}

func (w *heldWriter) Status() client.SubResourceWriter {
	return heldStatus{w: w, SubResourceWriter: w.Client.Status()}
}

type heldStatus struct {
	client.SubResourceWriter
	w *heldWriter
}

func (s heldStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	if err := s.w.wait(ctx); err != nil {
		return err
	}
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s heldStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	if err := s.w.wait(ctx); err != nil {
		return err
	}
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}
