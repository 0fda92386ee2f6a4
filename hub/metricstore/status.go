package metricstore

import (
	"cmp"
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/thanos-io/thanos/pkg/receive"
)

// shardStatsLimit is how many names each shard's head ranks for HeadStats,
// Prometheus's most (its API's limit bound): a name outside some shard's
// ranking is counted short there, which takes a shard with more names than
// this.
const shardStatsLimit = 10_000

// HeadStats returns the heads' statistics as Prometheus's /status/tsdb
// reads them, summed over the shards: series, the oldest and newest sample
// time, and the limit highest of each ranking of label names, values and
// pairs (by series, by distinct values, by bytes), by statsByLabelName's
// values for the series ranking. Clusters are in one shard each, so series
// counts sum exactly; a value several shards hold (a common "job") is
// counted in each. Prometheus caches a head's rankings 30 seconds.
func (s *Store) HeadStats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	out := &tsdb.Stats{MinTime: math.MaxInt64, MaxTime: math.MinInt64, IndexPostingStats: &index.PostingsStats{}}
	var metrics, names, values, pairs []index.Stat
	for i, rs := range s.shards {
		db := rs.Get()
		if db == nil {
			return nil, fmt.Errorf("head statistics of shard %s: %w", shardName(i), receive.ErrNotReady)
		}
		st := db.Head().Stats(statsByLabelName, shardStatsLimit)
		if st.NumSeries == 0 {
			continue
		}
		out.NumSeries += st.NumSeries
		out.MinTime, out.MaxTime = min(out.MinTime, st.MinTime), max(out.MaxTime, st.MaxTime)
		ps := st.IndexPostingStats
		out.IndexPostingStats.NumLabelPairs += ps.NumLabelPairs
		metrics = append(metrics, ps.CardinalityMetricsStats...)
		names = append(names, ps.CardinalityLabelStats...)
		values = append(values, ps.LabelValueStats...)
		pairs = append(pairs, ps.LabelValuePairsStats...)
	}
	if out.NumSeries == 0 {
		// As an empty Prometheus head reads.
		out.MinTime, out.MaxTime = math.MaxInt64, math.MinInt64
	}
	out.IndexPostingStats.CardinalityMetricsStats = topSums(metrics, limit)
	out.IndexPostingStats.CardinalityLabelStats = topSums(names, limit)
	out.IndexPostingStats.LabelValueStats = topSums(values, limit)
	out.IndexPostingStats.LabelValuePairsStats = topSums(pairs, limit)
	return out, nil
}

// topSums sums the counts of equal names and returns the limit highest,
// highest first (ties by name).
func topSums(stats []index.Stat, limit int) []index.Stat {
	sums := map[string]uint64{}
	for _, st := range stats {
		sums[st.Name] += st.Count
	}
	out := make([]index.Stat, 0, len(sums))
	for name, n := range sums {
		out = append(out, index.Stat{Name: name, Count: n})
	}
	slices.SortFunc(out, func(a, b index.Stat) int { return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Name, b.Name)) })
	return out[:min(len(out), max(limit, 0))]
}

// BlockMetas lists every shard's local blocks (those shipped to the bucket
// only are not listed, as Prometheus lists its own).
func (s *Store) BlockMetas() ([]tsdb.BlockMeta, error) {
	out := []tsdb.BlockMeta{}
	for i, rs := range s.shards {
		db := rs.Get()
		if db == nil {
			return nil, fmt.Errorf("list blocks of shard %s: %w", shardName(i), receive.ErrNotReady)
		}
		out = append(out, db.BlockMetas()...)
	}
	slices.SortFunc(out, func(a, b tsdb.BlockMeta) int { return cmp.Compare(a.MinTime, b.MinTime) })
	return out, nil
}

// WALReplayStatus reports a finished replay: Open returns once every
// shard has replayed its WAL (MultiTSDB opens them synchronously), so a
// store that can be asked has replayed. (The heads' own replay progress is
// not reachable: Thanos opens them without Prometheus's DB stats.)
func (s *Store) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	return tsdb.WALReplayStatus{}, nil
}
