package registration

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// A replica that does not lead the controllers relays the heartbeats it
// receives to the leader through the cluster's Lease: it writes the
// heartbeat's time into the Lease's renewTime, and what the heartbeat says
// into these annotations, and the leader takes a Lease newer than the last
// heartbeat it knows as a heartbeat. No replica speaks for a cluster to
// another: the Lease holds what the agent, authenticated by the replica
// that received it, said.
const (
	annotationAPIReachable = "fleetpulse.io/cluster-api-reachable"
	annotationAPIError     = "fleetpulse.io/cluster-api-error"
	annotationAgentVersion = "fleetpulse.io/agent-version"
	annotationClaims       = "fleetpulse.io/cluster-claims"
)

// relayed is what a replica last relayed of one cluster.
type relayed struct {
	at        time.Time
	reachable bool
	apiError  string
}

// relays remembers what was relayed, so that a steady cluster costs one
// Lease write per relay interval, not one per heartbeat.
type relays struct {
	mu   sync.Mutex
	last map[string]relayed
}

// SetLeading tells registration whether this replica leads the
// controllers: one that does not relays the heartbeats it receives to the
// leader. Without it (one hub), every heartbeat stays in memory.
func (s *Service) SetLeading(leading func() bool) { s.leading = leading }

// relayDue reports whether a heartbeat must be relayed: the first one, a
// change of what the agent reports, or one when the Lease is old enough
// that the leader, allowing the grace, could otherwise miss the next two
// periods. With a grace of three periods, that is once per period.
func (s *Service) relayDue(name string, b beat, period time.Duration) bool {
	s.relays.mu.Lock()
	defer s.relays.mu.Unlock()
	prev, ok := s.relays.last[name]
	every := max(b.Grace-2*period, time.Second)
	return !ok || prev.reachable != b.ClusterAPIReachable || prev.apiError != b.ClusterAPIError || b.At.Sub(prev.at) >= every
}

func (s *Service) relayed(name string, b beat) {
	s.relays.mu.Lock()
	defer s.relays.mu.Unlock()
	if s.relays.last == nil {
		s.relays.last = map[string]relayed{}
	}
	s.relays.last[name] = relayed{at: b.At, reachable: b.ClusterAPIReachable, apiError: b.ClusterAPIError}
}

// heard takes a heartbeat this replica received: into its memory, and to
// the leader when this replica does not lead.
func (s *Service) heard(ctx context.Context, mc *fleetv1.ManagedCluster, b beat) {
	s.tracker.beat(mc.Name, b)
	if err := s.relay(ctx, mc, b); err != nil {
		// The next heartbeat relays again, well within the grace.
		s.logger.Warn("relay a heartbeat to the controllers' leader", "cluster", mc.Name, "err", err)
	}
}

// relay writes a heartbeat this replica received into the cluster's Lease,
// when it does not lead the controllers and the leader needs to hear it.
func (s *Service) relay(ctx context.Context, mc *fleetv1.ManagedCluster, b beat) error {
	if s.leading == nil || s.leading() || !mc.Spec.Accepted || mc.DeletionTimestamp != nil || !s.relayDue(mc.Name, b, period(mc)) {
		return nil
	}
	claims, err := json.Marshal(b.Claims)
	if err != nil {
		return err
	}
	// The leader writes the Lease too, so a write may conflict (or a create
	// find it made): the retry reads the Lease from the apiserver rather
	// than the cache, which may not have seen the write it lost to yet.
	from := s.cache
	conflict := func(err error) bool { return apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) }
	err = retry.OnError(retry.DefaultRetry, conflict, func() error {
		l := &coordinationv1.Lease{}
		err := from.Get(ctx, client.ObjectKey{Namespace: mc.Name, Name: leaseName}, l)
		from = s.reader
		switch {
		case apierrors.IsNotFound(err):
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: mc.Name, Name: leaseName},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(mc.Name), LeaseDurationSeconds: ptr.To(s.leaseSeconds(b.Grace))}}
		case err != nil:
			return fmt.Errorf("read lease of %s: %w", mc.Name, err)
		default:
			l = l.DeepCopy()
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[annotationAPIReachable] = strconv.FormatBool(b.ClusterAPIReachable)
		l.Annotations[annotationAPIError] = b.ClusterAPIError
		l.Annotations[annotationAgentVersion] = b.AgentVersion
		l.Annotations[annotationClaims] = string(claims)
		l.Spec.RenewTime = &metav1.MicroTime{Time: b.At}
		if l.ResourceVersion == "" {
			// A cluster that just joined may not have the namespace the
			// leader makes for it yet: at thousands joining at once the
			// leader gets to it long after its first heartbeats.
			if err := s.ensureNamespace(ctx, mc); err != nil {
				return err
			}
			return s.writer.Create(ctx, l)
		}
		return s.writer.Update(ctx, l)
	})
	if err != nil {
		// The next heartbeat relays again.
		return fmt.Errorf("relay the heartbeat of %s into its lease: %w", mc.Name, err)
	}
	s.leaseWrites.Inc()
	s.relayed(mc.Name, b)
	return nil
}

// heardThroughLease is the heartbeat a Lease relays, if another replica
// wrote one newer than what this replica knows.
func (s *Service) heardThroughLease(l *coordinationv1.Lease) {
	if l.Name != leaseName || l.Spec.RenewTime == nil || l.Annotations[annotationAPIReachable] == "" {
		return
	}
	at := l.Spec.RenewTime.Time
	if prev, ok := s.tracker.get(l.Namespace); ok && !at.After(prev.At) {
		return
	}
	reachable, _ := strconv.ParseBool(l.Annotations[annotationAPIReachable])
	var claims []agentapi.Claim
	_ = json.Unmarshal([]byte(l.Annotations[annotationClaims]), &claims)
	s.tracker.beat(l.Namespace, beat{At: at, ClusterAPIReachable: reachable, ClusterAPIError: l.Annotations[annotationAPIError],
		AgentVersion: l.Annotations[annotationAgentVersion], Claims: claims})
}

// watchRelays feeds the heartbeats other replicas relay through Leases to
// this replica's tracker while it leads (until ctx ends).
func (s *Service) watchRelays(ctx context.Context) error {
	inf, err := s.informers.GetInformer(ctx, &coordinationv1.Lease{})
	if err != nil {
		return fmt.Errorf("watch clusters' leases: %w", err)
	}
	reg, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if l, ok := obj.(*coordinationv1.Lease); ok {
				s.heardThroughLease(l)
			}
		},
		UpdateFunc: func(_, obj any) {
			if l, ok := obj.(*coordinationv1.Lease); ok {
				s.heardThroughLease(l)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("watch clusters' leases: %w", err)
	}
	<-ctx.Done()
	return inf.RemoveEventHandler(reg)
}
