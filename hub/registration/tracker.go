package registration

import (
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
	// seeded marks a time taken from the cluster's Lease after a hub restart
	// rather than from a heartbeat this process received.
	seeded bool
}

// tracker keeps every cluster's last heartbeat in memory, so that a
// heartbeat costs no apiserver write; the controller reads it and writes
// only what changed. It wakes the controller when a heartbeat can change a
// cluster's conditions: the first one, a change of the reported API
// reachability, or one after a silence long enough to have made the cluster
// Unknown.
type tracker struct {
	mu     sync.Mutex
	beats  map[string]beat
	wake   chan event.GenericEvent
	silent func(name string) time.Duration // the grace period of a cluster
}

func newTracker(silent func(string) time.Duration) *tracker {
	return &tracker{beats: map[string]beat{}, wake: make(chan event.GenericEvent, 1024), silent: silent}
}

func (t *tracker) beat(name string, b beat) {
	t.mu.Lock()
	prev, ok := t.beats[name]
	t.beats[name] = b
	t.mu.Unlock()
	if !ok || prev.seeded || prev.ClusterAPIReachable != b.ClusterAPIReachable || b.At.Sub(prev.At) > t.silent(name) {
		t.poke(name)
	}
}

// seed records a heartbeat time known from the cluster's Lease, unless a
// newer heartbeat arrived meanwhile.
func (t *tracker) seed(name string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if prev, ok := t.beats[name]; ok && !prev.At.Before(at) {
		return
	}
	t.beats[name] = beat{At: at, ClusterAPIReachable: true, seeded: true}
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

// poke asks the controller to reconcile a cluster; when the queue is full
// the periodic requeue catches up.
func (t *tracker) poke(name string) {
	mc := &fleetv1.ManagedCluster{}
	mc.Name = name
	select {
	case t.wake <- event.GenericEvent{Object: mc}:
	default:
	}
}
