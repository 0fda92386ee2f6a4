package metricstore

import (
	"context"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// FixedAppendable hands out appenders that store nothing and answer every
// call with Err: nil discards, an error refuses.
type FixedAppendable struct{ Err error }

// Appender returns a FixedAppender with the same error.
func (f FixedAppendable) Appender(context.Context) storage.Appender { return FixedAppender(f) }

// FixedAppender stores nothing and answers every call with Err.
type FixedAppender struct{ Err error }

func (f FixedAppender) Append(storage.SeriesRef, labels.Labels, int64, float64) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, f.Err
}
func (f FixedAppender) SetOptions(*storage.AppendOptions) {}
func (f FixedAppender) Commit() error                     { return f.Err }
func (f FixedAppender) Rollback() error                   { return nil }
