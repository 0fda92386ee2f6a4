package ingest

import (
	"errors"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

var errNoCluster = errors.New("no cluster storage for this request")

// rejectAppender refuses everything; it stands in where no cluster was
// resolved, which the handler prevents, so that nothing can write unrouted.
type rejectAppender struct{}

func (rejectAppender) Append(storage.SeriesRef, labels.Labels, int64, float64) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, errNoCluster
}
func (rejectAppender) SetOptions(*storage.AppendOptions) {}
func (rejectAppender) Commit() error                     { return errNoCluster }
func (rejectAppender) Rollback() error                   { return nil }
