package events

import (
	"container/heap"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Event is one Kubernetes event occurrence as the hub keeps it.
type Event struct {
	Cluster   string    `json:"cluster"`
	Time      time.Time `json:"time"`
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	Kind      string    `json:"kind"`
	Namespace string    `json:"namespace,omitempty"`
	Name      string    `json:"name"`
	Message   string    `json:"message"`
	Count     int64     `json:"count,omitempty"`
	// Truncated says a field was cut to its maximum (and ends in Ellipsis).
	Truncated bool `json:"truncated,omitempty"`

	labels metricLabels // folded at ingest, for counters and series
	seq    uint64       // order of arrival, newest highest
}

// eventOverhead approximates an Event's memory beyond its strings.
const eventOverhead = 192

func (ev *Event) size() int64 {
	return int64(eventOverhead + len(ev.Cluster) + len(ev.Type) + len(ev.Reason) + len(ev.Kind) +
		len(ev.Namespace) + len(ev.Name) + len(ev.Message))
}

// Store keeps the newest events, at most capacity of them and at most the
// configured bytes, and counts them by cluster and folded reason, type and
// kind.
type Store struct {
	opts    options
	vocab   vocabulary
	metrics *metrics

	mu       sync.Mutex
	ring     []Event // ring[head] is the oldest of n; grows on demand up to capacity
	capacity int
	head     int
	n        int
	bytes    int64
	seq      uint64
}

// minRing is the ring's length before its first event: a hub that receives
// few events does not hold capacity of them (about 200 bytes each) from the
// start.
const minRing = 1024

// NewStore returns a store of the given capacity; reg may be nil. Settings
// out of range (see ValidateOptions) fall back to their defaults.
func NewStore(capacity int, reg prometheus.Registerer, opts ...Option) *Store {
	if capacity < 1 {
		capacity = 1
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	def := defaultOptions()
	if o.maxEventsPerRequest < 1 {
		o.maxEventsPerRequest = def.maxEventsPerRequest
	}
	if o.maxBytes < 1<<20 {
		o.maxBytes = def.maxBytes
	}
	return &Store{
		opts:     o,
		vocab:    newVocabulary(o.extraReasons, o.extraKinds),
		metrics:  newMetrics(reg),
		ring:     make([]Event, min(capacity, minRing)),
		capacity: capacity,
	}
}

// grow doubles the ring, at most to capacity, with the oldest event first.
// Eviction starts only once the ring is as long as capacity.
func (s *Store) grow() {
	ring := make([]Event, min(2*len(s.ring), s.capacity))
	for i := range s.n {
		ring[i] = s.ring[(s.head+i)%len(s.ring)]
	}
	s.ring, s.head = ring, 0
}

// Add keeps every log record of ld as an event of cluster and returns how many.
func (s *Store) Add(cluster string, ld plog.Logs) int {
	evs := s.Decode(cluster, ld)
	s.Put(evs)
	return len(evs)
}

// Decode reads ld as events of cluster (see Decode) with their labels folded
// into the store's vocabulary.
func (s *Store) Decode(cluster string, ld plog.Logs) []Event {
	evs := Decode(cluster, ld)
	for i := range evs {
		evs[i].labels = s.vocab.labels(&evs[i])
	}
	return evs
}

// Put keeps evs, evicting the oldest over capacity or bytes.
func (s *Store) Put(evs []Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		if ev.labels == (metricLabels{}) {
			ev.labels = s.vocab.labels(&ev)
		}
		size := ev.size()
		if s.n == len(s.ring) && len(s.ring) < s.capacity {
			s.grow()
		}
		for s.n == len(s.ring) || (s.n > 0 && s.bytes+size > s.opts.maxBytes) {
			s.bytes -= s.ring[s.head].size()
			s.ring[s.head] = Event{}
			s.head = (s.head + 1) % len(s.ring)
			s.n--
		}
		s.seq++
		ev.seq = s.seq
		s.ring[(s.head+s.n)%len(s.ring)] = ev
		s.n++
		s.bytes += size
		// Counted under the lock, so that Forget cannot interleave and
		// leave a forgotten cluster's label values behind.
		s.metrics.received.WithLabelValues(ev.Cluster, ev.labels.reason, ev.labels.typ, ev.labels.kind).Inc()
		if ev.Truncated {
			s.metrics.truncated.Inc()
		}
	}
	s.metrics.storedBytes.Set(float64(s.bytes))
	s.metrics.stored.Set(float64(s.n))
}

// Forget drops everything the store holds of cluster: its events and its
// counters' label values. The hub calls it when the cluster is deregistered.
func (s *Store) Forget(cluster string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := 0
	for i := range s.n {
		ev := s.ring[(s.head+i)%len(s.ring)]
		if ev.Cluster == cluster {
			s.bytes -= ev.size()
			continue
		}
		s.ring[(s.head+kept)%len(s.ring)] = ev
		kept++
	}
	for i := kept; i < s.n; i++ {
		s.ring[(s.head+i)%len(s.ring)] = Event{}
	}
	s.n = kept
	s.metrics.received.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
	s.metrics.storedBytes.Set(float64(s.bytes))
	s.metrics.stored.Set(float64(s.n))
}

// Query returns the events of cluster (all when empty) in [since, until),
// newest first, at most limit.
func (s *Store) Query(cluster string, since, until time.Time, limit int) []Event {
	if limit < 1 {
		return []Event{}
	}
	// Only the newest limit are held while scanning, whatever the store's
	// size.
	top := make(oldestFirst, 0, min(limit, 1024))
	s.mu.Lock()
	for i := range s.n {
		ev := &s.ring[(s.head+i)%len(s.ring)]
		if (cluster != "" && ev.Cluster != cluster) || ev.Time.Before(since) || !ev.Time.Before(until) {
			continue
		}
		if len(top) < limit {
			heap.Push(&top, *ev)
		} else if top[0].older(ev) {
			top[0] = *ev
			heap.Fix(&top, 0)
		}
	}
	s.mu.Unlock()
	out := []Event(top)
	slices.SortFunc(out, func(a, b Event) int {
		if a.older(&b) {
			return 1
		}
		return -1
	})
	return out
}

// older orders by event time, then by arrival.
func (ev *Event) older(o *Event) bool {
	if !ev.Time.Equal(o.Time) {
		return ev.Time.Before(o.Time)
	}
	return ev.seq < o.seq
}

// oldestFirst is a min-heap of events.
type oldestFirst []Event

func (h oldestFirst) Len() int           { return len(h) }
func (h oldestFirst) Less(i, j int) bool { return h[i].older(&h[j]) }
func (h oldestFirst) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *oldestFirst) Push(x any)        { *h = append(*h, x.(Event)) }
func (h *oldestFirst) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
