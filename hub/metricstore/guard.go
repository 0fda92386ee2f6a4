package metricstore

import (
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// clusterLabelGuard drops a "cluster" label a writer put on its series: on
// reads the label comes from the tenant, and a writer must not be able to
// shadow it.
type clusterLabelGuard struct{ storage.Appender }

func strip(l labels.Labels) labels.Labels {
	if !l.Has(ClusterLabel) {
		return l
	}
	return labels.NewBuilder(l).Del(ClusterLabel).Labels()
}

// GetRef looks a series up by its labels and their hash (storage.GetRef),
// for writers that decode labels without copying them and copy only a new
// series': a reference (with the stored labels) means the series exists. A
// label set that still carries a "cluster" label gets no reference, since
// its hash is not that of the series it would be stored as; the writer then
// appends by labels, and Append strips it.
func (g clusterLabelGuard) GetRef(l labels.Labels, hash uint64) (storage.SeriesRef, labels.Labels) {
	gr, ok := g.Appender.(storage.GetRef)
	if !ok || l.Has(ClusterLabel) {
		return 0, labels.EmptyLabels()
	}
	return gr.GetRef(l, hash)
}

func (g clusterLabelGuard) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	return g.Appender.Append(ref, strip(l), t, v)
}

func (g clusterLabelGuard) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	return g.Appender.AppendExemplar(ref, strip(l), e)
}

func (g clusterLabelGuard) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return g.Appender.AppendHistogram(ref, strip(l), t, h, fh)
}

func (g clusterLabelGuard) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return g.Appender.AppendHistogramSTZeroSample(ref, strip(l), t, st, h, fh)
}

func (g clusterLabelGuard) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	return g.Appender.UpdateMetadata(ref, strip(l), m)
}

func (g clusterLabelGuard) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	return g.Appender.AppendSTZeroSample(ref, strip(l), t, st)
}
