package metricstore

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/thanos/pkg/receive"
)

// HeadSeries counts the cluster's series in its shard's head (its active
// series): the length of the head's postings list of cluster="<cluster>".
// It walks that one array of series references, taken under the postings'
// read lock only for the map lookup, and touches no series: about a
// millisecond per 100k series. ErrNotReady means the shard is not open.
func (s *Store) HeadSeries(ctx context.Context, cluster string) (int, error) {
	db := s.shards[shardOf(cluster, len(s.shards))].Get()
	if db == nil {
		return 0, fmt.Errorf("count head series of cluster %q: %w", cluster, receive.ErrNotReady)
	}
	ir, err := db.Head().Index()
	if err != nil {
		return 0, fmt.Errorf("count head series of cluster %q: %w", cluster, err)
	}
	defer ir.Close()
	p, err := ir.Postings(ctx, ClusterLabel, cluster)
	if err != nil {
		return 0, fmt.Errorf("count head series of cluster %q: %w", cluster, err)
	}
	n := 0
	for p.Next() {
		n++
	}
	if err := p.Err(); err != nil {
		return 0, fmt.Errorf("count head series of cluster %q: %w", cluster, err)
	}
	return n, nil
}

// HeadEpoch identifies the head a cluster's series references point
// into, for writers that keep references between appenders. A head never
// gives a reference to two series (its IDs only grow), and an appender
// given the reference of a series the head has since dropped appends by
// the labels given with it instead; so a kept reference, given with its
// series' labels, is safe while the TSDB is the same one. The epoch moves
// on with the head's lowest time too, which moves when the head drops old
// series (head truncation): references kept from an earlier epoch would
// mostly be those of dropped series, which each cost a lookup by labels.
type HeadEpoch struct {
	db      *tsdb.DB
	minTime int64
}

// HeadEpoch returns the current epoch of the cluster's shard's head; false
// means the shard is not open.
func (s *Store) HeadEpoch(cluster string) (HeadEpoch, bool) {
	db := s.shards[shardOf(cluster, len(s.shards))].Get()
	if db == nil {
		return HeadEpoch{}, false
	}
	return HeadEpoch{db: db, minTime: db.Head().MinTime()}, true
}
