package registration

import (
	"context"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// lossScanInterval is how often the hub looks for clusters whose last
// heartbeat ran out of grace: the delay it adds to a loss at most.
const lossScanInterval = 500 * time.Millisecond

// availability is what a cluster's heartbeats say: its Available condition
// and the taints registration manages, over the taints others set.
func availability(mc *fleetv1.ManagedCluster, b beat, seen bool, grace time.Duration, now time.Time) (metav1.Condition, []fleetv1.Taint, bool) {
	fresh := seen && now.Sub(b.At) <= grace
	avail := metav1.Condition{Type: fleetv1.ConditionAvailable, ObservedGeneration: mc.Generation}
	taints := withoutManagedTaints(mc.Spec.Taints)
	switch {
	case !fresh:
		avail.Status, avail.Reason = metav1.ConditionUnknown, fleetv1.ReasonHeartbeatMissed
		avail.Message = fmt.Sprintf("no heartbeat for over %s", grace)
		if !seen {
			avail.Message = "no heartbeat yet"
		}
		taints = append(taints, managedTaint(mc.Spec.Taints, fleetv1.TaintUnreachable, now))
	case !b.ClusterAPIReachable:
		avail.Status, avail.Reason = metav1.ConditionFalse, fleetv1.ReasonClusterAPIUnreachable
		avail.Message = "the agent cannot reach its cluster's apiserver: " + b.ClusterAPIError
		taints = append(taints, managedTaint(mc.Spec.Taints, fleetv1.TaintUnavailable, now))
	default:
		avail.Status, avail.Reason, avail.Message = metav1.ConditionTrue, fleetv1.ReasonHeartbeating, "heartbeats arrive and the agent reaches its cluster's apiserver"
	}
	return avail, taints, fresh
}

// watchLoss finds the clusters whose last heartbeat ran out of grace, from
// the heartbeats in memory rather than from anything read back from the
// apiserver, and hands them to the availability workers.
func (s *Service) watchLoss(ctx context.Context) {
	t := time.NewTicker(lossScanInterval)
	defer t.Stop()
	for {
		for _, name := range s.tracker.expired(s.now()) {
			s.urgent.Add(name)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runAvailabilityPath runs the hand-over of heartbeats to the controller,
// the watch for silent clusters and the availability workers until ctx
// ends.
func (s *Service) runAvailabilityPath(ctx context.Context) {
	s.trackingSince()
	var wg sync.WaitGroup
	wg.Go(func() { s.tracker.pump(ctx) })
	wg.Go(func() { s.watchLoss(ctx) })
	wg.Go(func() {
		if err := s.watchRelays(ctx); err != nil && ctx.Err() == nil {
			s.logger.Error("heartbeats relayed by other replicas are not heard", "err", err)
		}
	})
	s.runAvailability(ctx)
	wg.Wait()
}

// runAvailability writes availability transitions (to Unknown or False and
// back) ahead of the controller's routine work: on a queue and workers of
// its own, with a control-plane client of its own, so that neither the
// controller's queue nor its client's rate limit stands in front of them.
func (s *Service) runAvailability(ctx context.Context) {
	go func() {
		<-ctx.Done()
		s.urgent.ShutDown()
	}()
	var wg sync.WaitGroup
	for range s.cfg.AvailabilityWorkers {
		wg.Go(func() {
			for s.nextTransition(ctx) {
			}
		})
	}
	wg.Wait()
}

func (s *Service) nextTransition(ctx context.Context) bool {
	name, shutdown := s.urgent.Get()
	if shutdown {
		return false
	}
	defer s.urgent.Done(name)
	if err := s.writeAvailability(ctx, name); err != nil {
		if ctx.Err() == nil {
			s.logger.Warn("write cluster availability", "cluster", name, "err", err)
		}
		s.urgent.AddRateLimited(name)
		return true
	}
	s.urgent.Forget(name)
	return true
}

// writeAvailability brings one cluster's Available condition and managed
// taints to what its heartbeats say, and writes nothing else: the
// controller's next pass does the rest. A write conflict is retried at once
// on the apiserver's current object.
func (s *Service) writeAvailability(ctx context.Context, name string) error {
	mc := &fleetv1.ManagedCluster{}
	if err := s.cache.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
		return client.IgnoreNotFound(err)
	}
	for attempt := 0; ; attempt++ {
		err := s.applyAvailability(ctx, mc)
		if err == nil || !apierrors.IsConflict(err) || attempt >= 3 {
			return err
		}
		mc = &fleetv1.ManagedCluster{}
		if err := s.reader.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return client.IgnoreNotFound(err)
		}
	}
}

func (s *Service) applyAvailability(ctx context.Context, mc *fleetv1.ManagedCluster) error {
	if mc.DeletionTimestamp != nil || !mc.Spec.Accepted {
		return nil
	}
	b, seen := s.tracker.get(mc.Name)
	if !seen {
		return nil // the controller seeds it from the Lease first
	}
	now := s.now()
	grace := s.grace(mc)
	avail, taints, _ := availability(mc, b, seen, grace, now)
	cur := meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionAvailable)
	sameCond := cur != nil && cur.Status == avail.Status && cur.Reason == avail.Reason && cur.Message == avail.Message &&
		cur.ObservedGeneration == avail.ObservedGeneration
	if sameCond && sameTaints(mc.Spec.Taints, taints) {
		return nil
	}
	if !sameTaints(mc.Spec.Taints, taints) {
		mc = mc.DeepCopy()
		mc.Spec.Taints = taints
		if err := s.urgentWriter.Update(ctx, mc); err != nil {
			return fmt.Errorf("update taints of %q: %w", mc.Name, err)
		}
	}
	if !sameCond || avail.ObservedGeneration != mc.Generation {
		// A taint is spec: writing it made a new generation.
		avail.ObservedGeneration = mc.Generation
		mc = mc.DeepCopy()
		meta.SetStatusCondition(&mc.Status.Conditions, avail)
		if !b.seeded {
			mc.Status.LastHeartbeatTime = &metav1.Time{Time: b.At.Truncate(time.Second)}
		}
		if err := s.urgentWriter.Status().Update(ctx, mc); err != nil {
			return fmt.Errorf("update availability of %q: %w", mc.Name, err)
		}
	}
	s.transitions.WithLabelValues(string(avail.Status)).Inc()
	if avail.Status == metav1.ConditionUnknown {
		s.lossDelay.Observe(now.Sub(b.At.Add(grace)).Seconds())
	}
	s.logger.Info("cluster availability changed", "cluster", mc.Name, "available", avail.Status, "reason", avail.Reason)
	return nil
}

// newAvailabilityQueue is the queue of clusters whose availability may have
// changed: a cluster is on it once however often it is added.
func newAvailabilityQueue() workqueue.TypedRateLimitingInterface[string] {
	return workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "cluster-availability"})
}
