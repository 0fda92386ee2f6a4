package metricstore

import (
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/thanos-io/thanos/pkg/dedup"
)

// TestDeduplicationKeepsEverySampleOfASplitSeries reads one cluster's
// series from two replicas that each hold part of it, as after an owner's
// kill and restart: both hold the samples before the kill, the new owner
// alone one written while the old was down, the old alone the one after
// its restart. Every sample either holds is in the answer; Thanos's
// penalty algorithm would drop the old owner's after the switch.
func TestDeduplicationKeepsEverySampleOfASplitSeries(t *testing.T) {
	replicas := map[string][]int64{
		"hub-0": {1000, 2000, 3000, 5000},
		"hub-1": {1000, 2000, 3000, 4000, 6000},
	}
	want := []int64{1000, 2000, 3000, 4000, 5000, 6000}
	read := func(algorithm string) []int64 {
		var series []storage.Series
		for _, id := range []string{"hub-0", "hub-1"} {
			var samples []chunks.Sample
			for _, ts := range replicas[id] {
				samples = append(samples, sample{t: ts, f: 1})
			}
			series = append(series, storage.NewListSeries(labels.FromStrings("__name__", "k8s_cluster_info", "cluster", "a"), samples))
		}
		set := dedup.NewSeriesSet(&listSeriesSet{series: series}, "", algorithm)
		var got []int64
		for set.Next() {
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, _ := it.At()
				got = append(got, ts)
			}
		}
		if err := set.Err(); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(dedupAlgorithm); !slices.Equal(got, want) {
		t.Errorf("the hub's deduplication read samples at %v, want every one either replica holds: %v", got, want)
	}
	if got := read(dedup.AlgorithmPenalty); slices.Equal(got, want) {
		t.Logf("the penalty algorithm kept every sample too (%v): the case no longer shows why the hub does not use it", got)
	}
}

type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }

// listSeriesSet is series sorted by labels, the replica label removed, as
// the proxy store hands them to deduplication.
type listSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i <= len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.i-1] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }
