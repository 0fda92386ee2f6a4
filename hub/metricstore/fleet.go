package metricstore

import (
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/component"
	"github.com/thanos-io/thanos/pkg/dedup"
	"github.com/thanos-io/thanos/pkg/query"
	"github.com/thanos-io/thanos/pkg/store"
)

// WithRemoteStores adds the StoreAPIs of other hub replicas to what the
// store's queryables read: remote is called on every query, as `thanos
// query` reads its endpoint set, and returns the peers reachable now.
func WithRemoteStores(remote func() []store.Client) Option {
	return func(s *Store) { s.remote = remote }
}

// The proxies' fan-out: how many Selects of one query run at once, and how
// long one may take.
const (
	maxConcurrentSelects = 4
	selectTimeout        = 2 * time.Minute
)

// dedupAlgorithm merges the copies of a series that several replicas hold.
// Replicas hold the same pushed samples at the same timestamps (a cluster
// written to two owners) or disjoint parts of its history (a cluster that
// moved and came back), never independent scrapes of one target, which is
// what Thanos's default penalty algorithm is for: it follows one replica
// and, after a switch, skips the other's samples for twice the gap, so a
// sample only one replica holds can vanish from every answer. The chain
// merge keeps the union, one sample per timestamp.
const dedupAlgorithm = dedup.AlgorithmChain

// buildProxies builds the store's two Thanos proxy stores. The StoreAPI
// serves this replica's data: its shards' TSDBs and the bucket's blocks of
// this replica that they no longer hold. The queryables read the fleet:
// the shards, every block of the bucket (a replica that is gone is read
// there), and the remote stores, deduplicated by the replica label as
// `thanos query --query.replica-label --deduplication.func=chain` does,
// so a series several replicas hold (a cluster that moved, or is
// replicated) reads once, without the label.
func (s *Store) buildProxies(kit log.Logger, reg prometheus.Registerer) {
	s.proxy = store.NewProxyStore(kit, prometheus.WrapRegistererWith(prometheus.Labels{"reads": "replica"}, reg), s.replicaClients,
		component.Query, labels.EmptyLabels(), 0, store.EagerRetrieval)
	fleet := store.NewProxyStore(kit, prometheus.WrapRegistererWith(prometheus.Labels{"reads": "fleet"}, reg), s.fleetClients,
		component.Query, labels.EmptyLabels(), 0, store.EagerRetrieval)
	creator := query.NewQueryableCreator(kit, prometheus.WrapRegistererWithPrefix("fleetpulse_hub_query_", reg), fleet,
		maxConcurrentSelects, selectTimeout, dedupAlgorithm, 64)
	// Deduplication costs a merge per series; one hub reading its own
	// writes, with no replica label, has nothing to deduplicate.
	dedupe := s.cfg.Replica != "" || s.remote != nil
	replicaLabels := []string{s.cfg.ReplicaLabel}
	s.fleet = creator(dedupe, replicaLabels, nil, 0, false, false, nil, query.NoopSeriesStatsReporter)
	// Users' queries answer from the replicas that answer, with a warning
	// naming the ones that did not, as `thanos query` does by default;
	// rules fail their evaluation instead, rather than resolve alerts on
	// missing data.
	s.partial = creator(dedupe, replicaLabels, nil, 0, true, false, nil, query.NoopSeriesStatsReporter)
}

// Queryable reads every cluster's series, each labelled cluster="<name>",
// from the local TSDBs, the bucket's blocks and the remote stores. A remote
// store that fails fails the query.
func (s *Store) Queryable() storage.Queryable { return s.fleet }

// PartialQueryable reads what Queryable reads, but answers from the stores
// that answer: a remote store that fails adds a warning to the result.
func (s *Store) PartialQueryable() storage.Queryable { return s.partial }

// replicaClients is what the StoreAPI serves: every shard's TSDB and, with
// a bucket, the blocks of this replica that no shard holds.
func (s *Store) replicaClients() []store.Client {
	clients := s.localClients()
	if s.reader == nil {
		return clients
	}
	own := func(lset labels.Labels) bool { return lset.Get(s.cfg.ReplicaLabel) == s.cfg.Replica }
	return append(clients, s.reader.clients(s.localBlocks, own)...)
}

// fleetClients is what the queryables read: every shard's TSDB, with a
// bucket every block that no shard holds, and the remote stores.
func (s *Store) fleetClients() []store.Client {
	clients := s.localClients()
	if s.reader != nil {
		clients = append(clients, s.reader.clients(s.localBlocks, nil)...)
	}
	if s.remote != nil {
		clients = append(clients, s.remote()...)
	}
	return clients
}
