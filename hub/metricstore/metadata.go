package metricstore

import (
	"sync"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	promMetadata "github.com/prometheus/prometheus/model/metadata"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
)

// Option is an optional setting of Open.
type Option func(*Store)

// WithMetadata keeps the metric metadata writers give the store's
// appenders (storage.Appender.UpdateMetadata) in md, by cluster, when
// their appends commit. Without it metadata is dropped. Either way it
// never reaches a TSDB head, which refuses metadata for series it does not
// hold, and would otherwise write it to the WAL with every series.
func WithMetadata(md *metadata.Store) Option {
	return func(s *Store) { s.meta = md }
}

// pendingMetadata holds an appender's metadata until it commits. Writers
// give metadata series by series (remote write 2.0 with every series): a
// family is held once, its last metadata, in memory that is pooled, so that
// a request of thousands of series allocates nothing for it.
type pendingMetadata struct {
	store *metadata.Store
	held  *heldMetadata // nil until metadata is given
}

// heldMetadata is the families held, each once, and where.
type heldMetadata struct {
	fams  []metadata.Family
	index map[string]int // family name → its place in fams
}

var heldPool = sync.Pool{New: func() any { return &heldMetadata{index: map[string]int{}} }}

// maxPooledFamilies keeps what outsized requests held out of the pool.
const maxPooledFamilies = 1 << 12

// add holds the metadata of l's metric family. l may point into a
// request, which outlives the appender (the store copies what it keeps).
func (p *pendingMetadata) add(l labels.Labels, m promMetadata.Metadata) {
	if p.store == nil || m.Help == "" && m.Unit == "" && (m.Type == "" || m.Type == model.MetricTypeUnknown) {
		return
	}
	name := l.Get(model.MetricNameLabel)
	if name == "" {
		return
	}
	if p.held == nil {
		p.held = heldPool.Get().(*heldMetadata)
	}
	h := p.held
	if i, ok := h.index[name]; ok {
		h.fams[i].Metadata = m
		return
	}
	h.index[name] = len(h.fams)
	h.fams = append(h.fams, metadata.Family{Name: name, Metadata: m})
}

// commit keeps what is held for the cluster.
func (p *pendingMetadata) commit(cluster string) {
	if p.held != nil && len(p.held.fams) > 0 {
		p.store.Update(cluster, p.held.fams)
	}
	p.reset()
}

// reset drops what is held, which points into requests.
func (p *pendingMetadata) reset() {
	h := p.held
	if h == nil {
		return
	}
	p.held = nil
	if cap(h.fams) > maxPooledFamilies {
		return
	}
	clear(h.fams)
	clear(h.index)
	h.fams = h.fams[:0]
	heldPool.Put(h)
}
