package metricstore

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/thanos/pkg/block"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"
	"github.com/thanos-io/thanos/pkg/info/infopb"
	"github.com/thanos-io/thanos/pkg/store"
	storecache "github.com/thanos-io/thanos/pkg/store/cache"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb"
	uatomic "go.uber.org/atomic"
	"google.golang.org/grpc"
)

// The bucket store's sizing: the hub reads the bucket for what local
// retention dropped (or a lost disk), which is rarely queried, so its caches
// are small and bounded, and a block's index-header is mapped only while the
// block is being queried.
const (
	// bucketIndexCacheBytes bounds the in-memory cache of postings and
	// series read from the bucket's block indexes.
	bucketIndexCacheBytes = 32 << 20
	// bucketIndexHeaderIdle unmaps an index-header not queried for this long.
	bucketIndexHeaderIdle = 5 * time.Minute
	// bucketConcurrency bounds the meta.json reads and block loads of a sync.
	bucketConcurrency = 4
	// bucketDeletionMarkDelay hides blocks that a compactor marked for
	// deletion this long ago, as Thanos's store gateway does by default.
	bucketDeletionMarkDelay = 24 * time.Hour
	// bucketInitialSyncTimeout bounds the sync that Open waits for; a bucket
	// that does not answer in time is synced again by the loop.
	bucketInitialSyncTimeout = time.Minute
)

// bucketReader serves the bucket's blocks through Thanos's store gateway
// code (store.BucketStore). It loads every block of the bucket that a shard
// shipped (external label ShardLabel) or that an earlier hub shipped from a
// cluster's own TSDB (external label "cluster", its series without one); at
// query time it offers, per shard, only the blocks the shard's local TSDB
// does not hold (see clients).
type bucketReader struct {
	logger  log.Logger
	bs      *store.BucketStore
	client  storepb.StoreClient
	syncMu  sync.Mutex // BucketStore.SyncBlocks must not run concurrently
	blocks  atomic.Pointer[bucketBlocks]
	cancel  context.CancelFunc
	stopped chan struct{}
}

// bucketBlocks is the time range of every block of the last sync, grouped by
// the blocks' external labels (one group per shard, or per cluster of the
// earlier layout). Never modified.
type bucketBlocks struct {
	groups []*blockGroup
}

type blockGroup struct {
	lset   labels.Labels
	shard  string // empty for a cluster's blocks of the earlier layout
	blocks []blockRange
	index  map[ulid.ULID]int // position in blocks
}

// blockRange is a block's ID and time range; like a block's meta.json, maxt
// is exclusive.
type blockRange struct {
	id         ulid.ULID
	mint, maxt int64
}

// newBucketReader builds the bucket store over bkt with its index-header and
// meta.json cache in dir. It starts nothing.
func newBucketReader(bkt objstore.Bucket, dir string, logger log.Logger, reg prometheus.Registerer) (*bucketReader, error) {
	r := &bucketReader{logger: log.With(logger, "component", "bucket-store")}
	r.blocks.Store(&bucketBlocks{})
	// Metric names follow Thanos's (thanos_bucket_store_…, thanos_objstore_…,
	// thanos_blocks_meta_…) behind the hub's prefix.
	hubReg := prometheus.WrapRegistererWithPrefix("fleetpulse_hub_", reg)
	thanosReg := prometheus.WrapRegistererWithPrefix("fleetpulse_hub_thanos_", reg)
	insBkt := objstore.WrapWithMetrics(bkt, thanosReg, bkt.Name())

	// Only blocks of a shard, or of a cluster's own TSDB (the earlier
	// layout): every series then reads with its cluster.
	keepClustered := []*relabel.Config{{
		Action:       relabel.Keep,
		SourceLabels: model.LabelNames{ShardLabel, ClusterLabel},
		Separator:    ";",
		Regex:        relabel.MustNewRegexp(".+;|;.+"),
	}}
	fetcher, err := block.NewMetaFetcher(r.logger, bucketConcurrency, insBkt, block.NewConcurrentLister(r.logger, insBkt), dir, thanosReg,
		[]block.MetadataFilter{
			block.NewLabelShardedMetaFilter(keepClustered),
			block.NewIgnoreDeletionMarkFilter(r.logger, insBkt, bucketDeletionMarkDelay, bucketConcurrency),
			// A compactor's output replaces its sources.
			block.NewDeduplicateFilter(bucketConcurrency),
		})
	if err != nil {
		return nil, fmt.Errorf("bucket block meta fetcher: %w", err)
	}
	fetcher.UpdateOnChange(r.updateBlocks)
	indexCache, err := storecache.NewInMemoryIndexCacheWithConfig(r.logger, nil, hubReg, storecache.InMemoryIndexCacheConfig{
		MaxSize:     bucketIndexCacheBytes,
		MaxItemSize: bucketIndexCacheBytes / 2,
	})
	if err != nil {
		return nil, fmt.Errorf("bucket index cache: %w", err)
	}
	r.bs, err = store.NewBucketStore(insBkt, fetcher, dir,
		store.NewChunksLimiterFactory(0), store.NewSeriesLimiterFactory(0), store.NewBytesLimiterFactory(0), // the engine's max samples limit queries
		store.NewGapBasedPartitioner(store.PartitionerMaxGapSize),
		bucketConcurrency, store.DefaultPostingOffsetInMemorySampling,
		false,                       // no series response hints
		true, bucketIndexHeaderIdle, // lazy index-header reader
		store.WithLogger(r.logger),
		store.WithRegistry(hubReg),
		store.WithIndexCache(indexCache),
	)
	if err != nil {
		return nil, fmt.Errorf("bucket store: %w", err)
	}
	r.client = storepb.ServerAsClient(r.bs, uatomic.Bool{})
	return r, nil
}

// start syncs the bucket once, waiting at most bucketInitialSyncTimeout
// (a failure is logged: the loop tries again), then every interval until stop.
func (r *bucketReader) start(interval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.stopped = cancel, make(chan struct{})
	initCtx, initCancel := context.WithTimeout(ctx, bucketInitialSyncTimeout)
	r.syncMu.Lock()
	err := r.bs.InitialSync(initCtx)
	r.syncMu.Unlock()
	initCancel()
	if err != nil {
		level.Warn(r.logger).Log("msg", "initial bucket sync failed; bucket blocks are read once a later sync succeeds", "err", err)
	}
	go func() {
		defer close(r.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.sync(ctx); err != nil && ctx.Err() == nil {
					level.Warn(r.logger).Log("msg", "bucket sync failed", "err", err)
				}
			}
		}
	}()
}

// sync loads the blocks new to the bucket and drops the ones gone from it.
func (r *bucketReader) sync(ctx context.Context) error {
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if err := r.bs.SyncBlocks(ctx); err != nil {
		return fmt.Errorf("sync bucket blocks: %w", err)
	}
	return nil
}

// stop ends the sync loop, waits for it, and unloads every block.
func (r *bucketReader) stop() error {
	if r.cancel != nil {
		r.cancel()
		<-r.stopped
	}
	r.syncMu.Lock()
	defer r.syncMu.Unlock()
	if err := r.bs.Close(); err != nil {
		return fmt.Errorf("close bucket store: %w", err)
	}
	return nil
}

// updateBlocks records the blocks a sync fetched. A failed fetch may list
// only some blocks, and the bucket store keeps the blocks it has then, so
// the record does too.
func (r *bucketReader) updateBlocks(metas []blockmeta.Meta, err error) {
	type entry struct {
		lset labels.Labels
		blockRange
	}
	byID := make(map[ulid.ULID]entry, len(metas))
	if err != nil {
		for _, g := range r.blocks.Load().groups {
			for _, b := range g.blocks {
				byID[b.id] = entry{g.lset, b}
			}
		}
	}
	for _, m := range metas {
		byID[m.ULID] = entry{labels.FromMap(m.Thanos.Labels), blockRange{id: m.ULID, mint: m.MinTime, maxt: m.MaxTime}}
	}
	groups := map[uint64]*blockGroup{}
	next := &bucketBlocks{}
	for _, e := range byID {
		h := e.lset.Hash()
		g, ok := groups[h]
		if !ok {
			g = &blockGroup{lset: e.lset, shard: e.lset.Get(ShardLabel), index: map[ulid.ULID]int{}}
			groups[h] = g
			next.groups = append(next.groups, g)
		}
		g.index[e.id] = len(g.blocks)
		g.blocks = append(g.blocks, e.blockRange)
	}
	r.blocks.Store(next)
}

// clients returns one store client per shard in the bucket (and per cluster
// of the earlier layout) whose external labels keep passes (nil: all),
// covering the time range of its bucket blocks that
// local(shard) does not list. A shard whose bucket blocks are all local gets
// none: the proxy then reads its local TSDB only. Blocks shipped from a local TSDB keep
// their ULID, so a block in both places is read once, from the local disk;
// where ranges still overlap (a local block deleted between this call and
// the read, a compactor's merged block), the proxy store merges the
// identical series and drops identical chunks.
func (r *bucketReader) clients(local func(shard string) []ulid.ULID, keep func(labels.Labels) bool) []store.Client {
	var out []store.Client
	for _, g := range r.blocks.Load().groups {
		if keep != nil && !keep(g.lset) {
			continue
		}
		isLocal := make([]bool, len(g.blocks))
		for _, id := range local(g.shard) {
			if i, ok := g.index[id]; ok {
				isLocal[i] = true
			}
		}
		mint, maxt := int64(math.MaxInt64), int64(math.MinInt64)
		for i, b := range g.blocks {
			if !isLocal[i] {
				mint, maxt = min(mint, b.mint), max(maxt, b.maxt)
			}
		}
		if mint > maxt {
			continue
		}
		// maxt-1: a local block that starts where these end is not read.
		hidden := withoutShardLabel
		if g.lset.Get(ClusterLabel) == earlierFleetTenant {
			hidden = []string{ShardLabel, ClusterLabel}
		}
		read := labels.NewBuilder(g.lset)
		for _, h := range hidden {
			read.Del(h)
		}
		out = append(out, &bucketClient{r: r, lset: g.lset, hidden: hidden, readLset: read.Labels(), mint: mint, maxt: maxt - 1})
	}
	return out
}

// earlierFleetTenant is the tenant an earlier hub kept series naming no
// cluster in; its blocks carry it as their cluster label, which their series
// did not have when written and do not get when read.
const earlierFleetTenant = "_fleet"

// bucketClient is the bucket store as one group's store client, limited to
// the group's blocks (its external labels) and to [mint, maxt], inclusive.
// Its series read without the hidden external labels (the shard's, as the
// shard's local series do), and matchers on those are decided as on series
// without them.
type bucketClient struct {
	r      *bucketReader
	lset   labels.Labels
	hidden []string
	// readLset is lset without the hidden labels: the labels its series get.
	readLset   labels.Labels
	mint, maxt int64
}

var _ store.Client = (*bucketClient)(nil)

// matchers decides a request's matchers on hidden labels and adds the
// group's external labels, so the bucket store reads only this group's
// blocks.
func (c *bucketClient) matchers(ms []storepb.LabelMatcher) []storepb.LabelMatcher {
	out := slices.Clip(hiddenMatchers(ms, c.hidden))
	c.lset.Range(func(l labels.Label) {
		out = append(out, storepb.LabelMatcher{Type: storepb.LabelMatcher_EQ, Name: l.Name, Value: l.Value})
	})
	return out
}

func (c *bucketClient) Series(ctx context.Context, in *storepb.SeriesRequest, opts ...grpc.CallOption) (storepb.Store_SeriesClient, error) {
	req := *in // the proxy shares its request among its stores
	req.Matchers = c.matchers(in.Matchers)
	req.MinTime, req.MaxTime = max(in.MinTime, c.mint), min(in.MaxTime, c.maxt)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, c.hidden)
	return c.r.client.Series(ctx, &req, opts...)
}

func (c *bucketClient) LabelNames(ctx context.Context, in *storepb.LabelNamesRequest, opts ...grpc.CallOption) (*storepb.LabelNamesResponse, error) {
	req := *in
	req.Matchers = c.matchers(in.Matchers)
	req.Start, req.End = max(in.Start, c.mint), min(in.End, c.maxt)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, c.hidden)
	return c.r.client.LabelNames(ctx, &req, opts...)
}

func (c *bucketClient) LabelValues(ctx context.Context, in *storepb.LabelValuesRequest, opts ...grpc.CallOption) (*storepb.LabelValuesResponse, error) {
	req := *in
	req.Matchers = c.matchers(in.Matchers)
	req.Start, req.End = max(in.Start, c.mint), min(in.End, c.maxt)
	req.WithoutReplicaLabels = hiddenAnd(in.WithoutReplicaLabels, c.hidden)
	return c.r.client.LabelValues(ctx, &req, opts...)
}

func (c *bucketClient) LabelSets() []labels.Labels              { return []labels.Labels{c.readLset} }
func (c *bucketClient) TimeRange() (int64, int64)               { return c.mint, c.maxt }
func (c *bucketClient) SupportsSharding() bool                  { return true }
func (c *bucketClient) SupportsWithoutReplicaLabels() bool      { return true }
func (c *bucketClient) Addr() (string, bool)                    { return "", true }
func (c *bucketClient) Matches(matchers []*labels.Matcher) bool { return true }

func (c *bucketClient) TSDBInfos() []infopb.TSDBInfo {
	return []infopb.TSDBInfo{{Labels: labelpb.ZLabelSet{Labels: labelpb.ZLabelsFromPromLabels(c.readLset)}, MinTime: c.mint, MaxTime: c.maxt}}
}

func (c *bucketClient) String() string {
	return fmt.Sprintf("bucket %s MinTime: %d MaxTime: %d", c.lset, c.mint, c.maxt)
}

// bucketCacheDir is where the bucket store keeps index-headers and meta.json
// files: in the TSDB folder, beside the shards, so that everything the hub
// writes is under --storage.tsdb.path.
func bucketCacheDir(tsdbDir string) string {
	return filepath.Join(tsdbDir, bucketCacheName)
}

// localClients are the shards' TSDBs as store clients.
func (s *Store) localClients() []store.Client {
	tsdbs := s.dbs.TSDBLocalClients()
	clients := make([]store.Client, 0, len(tsdbs))
	for _, c := range tsdbs {
		clients = append(clients, newShardClient(c))
	}
	return clients
}

// localBlocks lists the blocks of a shard's TSDB, as the TSDB's next
// querier reads them; none for a shard that is not open.
func (s *Store) localBlocks(shard string) []ulid.ULID {
	i, ok := s.shardIndex[shard]
	if !ok {
		return nil
	}
	db := s.shards[i].Get()
	if db == nil {
		return nil
	}
	blocks := db.Blocks()
	ids := make([]ulid.ULID, len(blocks))
	for i, b := range blocks {
		ids[i] = b.Meta().ULID
	}
	return ids
}
