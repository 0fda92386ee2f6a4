package metricstore

import (
	"context"
	"fmt"

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
