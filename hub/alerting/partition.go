package alerting

import (
	"context"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Option configures Alerting beyond its Config.
type Option func(*options)

type options struct {
	keep func(labels.Labels) bool
}

// WithPartition makes this replica one of several that evaluate the same
// rules over the same fleet: every replica evaluates every group, so each
// holds every alert's state (a replica that takes a cluster over resumes
// its alerts' "for" where the previous owner was), but a replica writes
// only the rule results and sends only the alerts whose labels keep
// passes, so each series is written, and each alert sent, by one replica.
func WithPartition(keep func(labels.Labels) bool) Option {
	return func(o *options) { o.keep = keep }
}

// partitioned sends only the alerts keep passes.
func partitioned(notify rules.NotifyFunc, keep func(labels.Labels) bool) rules.NotifyFunc {
	return func(ctx context.Context, expr string, alerts ...*rules.Alert) {
		kept := alerts[:0:0]
		for _, a := range alerts {
			if keep(a.Labels) {
				kept = append(kept, a)
			}
		}
		if len(kept) > 0 {
			notify(ctx, expr, kept...)
		}
	}
}

// partitionedAppendable writes only the series keep passes; the others are
// dropped as if written.
type partitionedAppendable struct {
	storage.Appendable
	keep func(labels.Labels) bool
}

func (p partitionedAppendable) Appender(ctx context.Context) storage.Appender {
	return partitionedAppender{Appender: p.Appendable.Appender(ctx), keep: p.keep}
}

type partitionedAppender struct {
	storage.Appender
	keep func(labels.Labels) bool
}

func (p partitionedAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.Append(ref, l, t, v)
}

func (p partitionedAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendHistogram(ref, l, t, h, fh)
}

func (p partitionedAppender) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendExemplar(ref, l, e)
}

func (p partitionedAppender) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.UpdateMetadata(ref, l, m)
}

func (p partitionedAppender) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendSTZeroSample(ref, l, t, st)
}

func (p partitionedAppender) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendHistogramSTZeroSample(ref, l, t, st, h, fh)
}
