package metricstore

import (
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// clusterStamp is a cluster's appender into its shard: every series it
// stores carries cluster="<the cluster>", whatever "cluster" label the
// writer gave it, so a cluster cannot write series that read as another's;
// and no shard label, which reads drop (series differing only by it would
// read as one).
type clusterStamp struct {
	storage.Appender
	cluster string
	// last is the last series stamped: writers append a series' samples
	// one after another with the same labels, which then cost a
	// comparison, not a copy. It is compared label by label (not kept as
	// the writer's labels, whose array a writer may reuse).
	last labels.Labels
	// scratch holds a stamped label set to look a series up by: it is not
	// kept by the TSDB, so it is reused.
	scratch labels.Labels
	// meta holds the metadata given until the appender commits.
	meta pendingMetadata
}

func (c *clusterStamp) stamp(l labels.Labels) labels.Labels {
	if c.stamped(l) {
		return l
	}
	if stampOf(l, c.last) {
		return c.last
	}
	c.last = labels.NewBuilder(l).Set(ClusterLabel, c.cluster).Del(ShardLabel).Labels()
	return c.last
}

// stamped reports whether l is stored as it is.
func (c *clusterStamp) stamped(l labels.Labels) bool {
	return l.Get(ClusterLabel) == c.cluster && !l.Has(ShardLabel)
}

// stampOf reports whether stamped is l with the cluster label set (and no
// shard label): the same labels but for those two. Both are sorted by name (the package
// builds only with slice labels, see slicelabels.go).
func stampOf(l, stamped labels.Labels) bool {
	if len(stamped) == 0 {
		return false
	}
	j := 0
	for _, x := range l {
		if x.Name == ClusterLabel || x.Name == ShardLabel {
			continue
		}
		if j < len(stamped) && stamped[j].Name == ClusterLabel {
			j++
		}
		if j >= len(stamped) || stamped[j] != x {
			return false
		}
		j++
	}
	if j < len(stamped) && stamped[j].Name == ClusterLabel {
		j++
	}
	return j == len(stamped)
}

// GetRef looks a series up by its labels and their hash (storage.GetRef),
// for writers that decode labels without copying them and copy only a new
// series': a reference (with the stored labels) means the series exists.
// Only labels that already carry the cluster's stamp are looked up, since
// the hash of any other set is not that of a series it would be stored as;
// the writer then appends by labels, and Append stamps them.
func (c *clusterStamp) GetRef(l labels.Labels, hash uint64) (storage.SeriesRef, labels.Labels) {
	gr, ok := c.Appender.(storage.GetRef)
	if !ok || !c.stamped(l) {
		return 0, labels.EmptyLabels()
	}
	return gr.GetRef(l, hash)
}

// Append stamps the series' labels. A writer's first append to a series
// (no reference yet) looks the stamped series up first, in a scratch label
// set: an existing series is then appended to by reference, with no copy of
// its labels, which is what most appends are.
func (c *clusterStamp) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if ref == 0 {
		if gr, ok := c.Appender.(storage.GetRef); ok {
			c.scratch = appendStamped(c.scratch[:0], l, c.cluster)
			if r, stored := gr.GetRef(c.scratch, c.scratch.Hash()); r != 0 {
				return c.Appender.Append(r, stored, t, v)
			}
		}
	}
	return c.Appender.Append(ref, c.stamp(l), t, v)
}

// appendStamped appends l with cluster="<cluster>" in place of any cluster
// label, and without a shard label, to dst, in label order.
func appendStamped(dst, l labels.Labels, cluster string) labels.Labels {
	stamped := false
	for _, x := range l {
		if !stamped && x.Name >= ClusterLabel {
			dst = append(dst, labels.Label{Name: ClusterLabel, Value: cluster})
			stamped = true
		}
		if x.Name != ClusterLabel && x.Name != ShardLabel {
			dst = append(dst, x)
		}
	}
	if !stamped {
		dst = append(dst, labels.Label{Name: ClusterLabel, Value: cluster})
	}
	return dst
}

func (c *clusterStamp) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	return c.Appender.AppendExemplar(ref, c.stamp(l), e)
}

func (c *clusterStamp) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return c.Appender.AppendHistogram(ref, c.stamp(l), t, h, fh)
}

func (c *clusterStamp) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return c.Appender.AppendHistogramSTZeroSample(ref, c.stamp(l), t, st, h, fh)
}

// UpdateMetadata keeps the metadata of l's metric family for the cluster
// (WithMetadata), once the appender commits.
func (c *clusterStamp) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	c.meta.add(l, m)
	return ref, nil
}

func (c *clusterStamp) Commit() error {
	err := c.Appender.Commit()
	if err == nil {
		c.meta.commit(c.cluster)
	}
	c.meta.reset()
	return err
}

func (c *clusterStamp) Rollback() error {
	c.meta.reset()
	return c.Appender.Rollback()
}

func (c *clusterStamp) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	return c.Appender.AppendSTZeroSample(ref, c.stamp(l), t, st)
}
