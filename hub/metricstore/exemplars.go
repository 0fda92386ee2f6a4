package metricstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// exemplarsPerShard is each shard's share of the store's exemplars.
func exemplarsPerShard(total int64, shards int) int64 {
	return (total + int64(shards) - 1) / int64(shards)
}

// ExemplarQueryable reads the exemplars of every shard's head. Their
// series read as the store's queries read them: labelled by their cluster
// (as stored: the stamp set it), without the shard label, and a matcher on
// the shard label decided as on an absent label (the heads' series lack
// it).
func (s *Store) ExemplarQueryable() storage.ExemplarQueryable { return exemplarQueryable{s} }

type exemplarQueryable struct{ s *Store }

func (e exemplarQueryable) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	qs := make(shardExemplars, 0, len(e.s.shards))
	for i, rs := range e.s.shards {
		q, err := rs.ExemplarQuerier(ctx)
		if err != nil {
			return nil, fmt.Errorf("query exemplars of shard %s: %w", shardName(i), err)
		}
		qs = append(qs, q)
	}
	return qs, nil
}

// shardExemplars queries every shard's exemplars and merges them.
type shardExemplars []storage.ExemplarQuerier

// Select returns the exemplars of the series any of the matcher sets
// selects, between start and end (milliseconds). A series in two shards
// (its cluster moved when the shard count changed) reads as one.
func (qs shardExemplars) Select(start, end int64, matchers ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	out := []exemplar.QueryResult{} // the API answers nil as no data at all
	seen := map[uint64][]int{}      // series hash → indexes into out
	for i, q := range qs {
		res, err := q.Select(start, end, matchers...)
		if err != nil {
			return nil, fmt.Errorf("query exemplars of shard %s: %w", shardName(i), err)
		}
		for _, r := range res {
			r.SeriesLabels = withoutShard(r.SeriesLabels)
			h := r.SeriesLabels.Hash()
			j := slices.IndexFunc(seen[h], func(j int) bool { return labels.Equal(out[j].SeriesLabels, r.SeriesLabels) })
			if j < 0 {
				seen[h] = append(seen[h], len(out))
				out = append(out, r)
				continue
			}
			merged := &out[seen[h][j]]
			merged.Exemplars = append(merged.Exemplars, r.Exemplars...)
			slices.SortStableFunc(merged.Exemplars, func(a, b exemplar.Exemplar) int { return cmp.Compare(a.Ts, b.Ts) })
		}
	}
	return out, nil
}
