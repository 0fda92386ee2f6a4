package events

import (
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"go.opentelemetry.io/collector/pdata/pcommon"
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
}

// Store keeps the newest Capacity events.
type Store struct {
	mu     sync.Mutex
	ring   []Event
	next   int
	full   bool
	counts *prometheus.CounterVec
}

// NewStore returns a store of the given capacity; reg may be nil.
func NewStore(capacity int, reg prometheus.Registerer) *Store {
	if capacity < 1 {
		capacity = 1
	}
	return &Store{
		ring: make([]Event, capacity),
		counts: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_events_total",
			Help: "Kubernetes events received from agents, by cluster, reason, type and involved-object kind.",
		}, []string{"cluster", "reason", "type", "kind"}),
	}
}

// Add keeps every log record of ld as an event of cluster and returns how many.
func (s *Store) Add(cluster string, ld plog.Logs) int {
	evs := Decode(cluster, ld)
	s.Put(evs)
	return len(evs)
}

// Decode reads every log record of ld as an event of cluster.
func Decode(cluster string, ld plog.Logs) []Event {
	var evs []Event
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		res := rl.Resource().Attributes()
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				attrs := lr.Attributes()
				ev := Event{
					Cluster:   cluster,
					Time:      lr.Timestamp().AsTime(),
					Type:      str(attrs, "k8s.event.type"),
					Reason:    str(attrs, "k8s.event.reason"),
					Kind:      str(res, "k8s.object.kind"),
					Namespace: str(res, "k8s.namespace.name"),
					Name:      str(res, "k8s.object.name"),
					Message:   lr.Body().AsString(),
				}
				if v, ok := attrs.Get("k8s.event.count"); ok {
					ev.Count = v.Int()
				}
				if ev.Time.IsZero() || lr.Timestamp() == 0 {
					ev.Time = lr.ObservedTimestamp().AsTime()
				}
				evs = append(evs, ev)
			}
		}
	}
	return evs
}

// Put keeps evs, evicting the oldest over capacity.
func (s *Store) Put(evs []Event) {
	s.mu.Lock()
	for _, ev := range evs {
		s.ring[s.next] = ev
		s.next = (s.next + 1) % len(s.ring)
		s.full = s.full || s.next == 0
	}
	s.mu.Unlock()
	for _, ev := range evs {
		s.counts.WithLabelValues(ev.Cluster, ev.Reason, ev.Type, ev.Kind).Inc()
	}
}

// Query returns the events of cluster (all when empty) in [since, until),
// newest first, at most limit.
func (s *Store) Query(cluster string, since, until time.Time, limit int) []Event {
	s.mu.Lock()
	n := s.next
	if s.full {
		n = len(s.ring)
	}
	out := make([]Event, 0, min(n, limit))
	for i := 0; i < n; i++ {
		ev := s.ring[(s.next-1-i+len(s.ring))%len(s.ring)]
		if (cluster == "" || ev.Cluster == cluster) && !ev.Time.Before(since) && ev.Time.Before(until) {
			out = append(out, ev)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func str(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}
