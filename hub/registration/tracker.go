package registration

import (
	"context"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// beat is the last heartbeat of one cluster as this hub received it.
type beat struct {
	At                  time.Time
	ClusterAPIReachable bool
	ClusterAPIError     string
	AgentVersion        string
	Claims              []agentapi.Claim
	// Grace is how long the cluster may stay silent after At; 0 means the
	// tracker looks it up.
	Grace time.Duration
	// seeded marks a time taken from the cluster's Lease after a hub restart
	// rather than from a heartbeat this process received.
	seeded bool
	// lost marks a cluster already handed over as silent past its grace.
	lost bool
}

// tracker keeps every cluster's last heartbeat in memory, so that a
// heartbeat costs no apiserver write. It wakes the controller when a
// heartbeat can change a cluster's conditions (the first one, a change of
// the reported API reachability, one after a silence long enough to have
// made the cluster Unknown), and hands those that change availability, and
// the clusters that fall silent (expired), to the availability workers.
type tracker struct {
	mu     sync.Mutex
	beats  map[string]beat
	silent func(name string) time.Duration // the grace period of a cluster

	// pending are the clusters to wake the controller for, each once;
	// pump hands them over while the controller runs.
	pending map[string]struct{}
	kick    chan struct{}
	wake    chan event.GenericEvent
	// urgent takes availability transitions.
	urgent func(name string)
}

func newTracker(silent func(string) time.Duration, urgent func(string)) *tracker {
	return &tracker{beats: map[string]beat{}, silent: silent, urgent: urgent,
		pending: map[string]struct{}{}, kick: make(chan struct{}, 1), wake: make(chan event.GenericEvent)}
}

func (t *tracker) beat(name string, b beat) {
	if b.Grace <= 0 {
		b.Grace = t.silent(name)
	}
	t.mu.Lock()
	prev, ok := t.beats[name]
	t.beats[name] = b
	t.mu.Unlock()
	gone := ok && (prev.lost || b.At.Sub(prev.At) > prev.Grace)
	if gone || (ok && !prev.seeded && prev.ClusterAPIReachable != b.ClusterAPIReachable) {
		t.urgent(name)
	}
	if !ok || prev.seeded || gone || prev.ClusterAPIReachable != b.ClusterAPIReachable {
		t.poke(name)
	}
}

// seed records a heartbeat time known from the cluster's Lease, unless a
// newer heartbeat arrived meanwhile.
func (t *tracker) seed(name string, at time.Time, grace time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.beats[name]; ok && !prev.At.Before(at) {
		return
	}
	t.beats[name] = beat{At: at, ClusterAPIReachable: true, Grace: grace, seeded: true}
}

func (t *tracker) get(name string) (beat, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	b, ok := t.beats[name]
	return b, ok
}

func (t *tracker) forget(name string) {
	t.mu.Lock()
	delete(t.beats, name)
	t.mu.Unlock()
}

// expired returns the clusters that fell silent past their grace since the
// last call, each once per silence.
func (t *tracker) expired(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for name, b := range t.beats {
		if !b.lost && now.Sub(b.At) > b.Grace {
			b.lost = true
			t.beats[name] = b
			out = append(out, name)
		}
	}
	return out
}

// poke asks the controller to reconcile a cluster. It never blocks: a hub
// that is not the leader runs no controller, and its gateway pokes all the
// same.
func (t *tracker) poke(name string) {
	t.mu.Lock()
	t.pending[name] = struct{}{}
	t.mu.Unlock()
	select {
	case t.kick <- struct{}{}:
	default:
	}
}

// pump hands the pending clusters to the controller until ctx ends.
func (t *tracker) pump(ctx context.Context) {
	for {
		t.mu.Lock()
		batch := t.pending
		t.pending = map[string]struct{}{}
		t.mu.Unlock()
		for name := range batch {
			mc := &fleetv1.ManagedCluster{}
			mc.Name = name
			select {
			case t.wake <- event.GenericEvent{Object: mc}:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.kick:
		case <-ctx.Done():
			return
		}
	}
}
