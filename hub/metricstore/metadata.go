package metricstore

import (
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
// give metadata series by series, a family's series mostly one after
// another (a histogram's buckets): a repeat of the last family is not
// held again.
type pendingMetadata struct {
	store *metadata.Store
	fams  []metadata.Family
}

// add holds the metadata of l's metric family. l may point into a
// request, which outlives the appender.
func (p *pendingMetadata) add(l labels.Labels, m promMetadata.Metadata) {
	if p.store == nil || m.Help == "" && m.Unit == "" && (m.Type == "" || m.Type == model.MetricTypeUnknown) {
		return
	}
	name := l.Get(model.MetricNameLabel)
	if n := len(p.fams); name == "" || n > 0 && p.fams[n-1].Name == name && p.fams[n-1].Metadata == m {
		return
	}
	p.fams = append(p.fams, metadata.Family{Name: name, Metadata: m})
}

// commit keeps what is held for the cluster.
func (p *pendingMetadata) commit(cluster string) {
	if len(p.fams) > 0 {
		p.store.Update(cluster, p.fams)
	}
	p.reset()
}

func (p *pendingMetadata) reset() {
	clear(p.fams)
	p.fams = p.fams[:0]
}
