package metricstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/client"
	"github.com/thanos-io/objstore/providers/filesystem"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"
	"github.com/thanos-io/thanos/pkg/receive"
	"github.com/thanos-io/thanos/pkg/store"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

// Per-shard head sizing: 1024 stripes per shard make 16,384 stripe locks
// over the default 16 shards, as many as one Prometheus head has, and a
// stripe's two maps cost about 200 bytes whether it holds a series or not
// (4096 stripes cost 13 MB over 16 shards, 130 bytes per series of a
// 100,000-series hub); 1 MiB holds several minutes of a shard's chunks
// (they are cut every 120 samples).
const (
	shardStripeSize       = 1 << 10
	shardChunkWriteBuffer = 1 << 20
)

// Store holds the shards' TSDBs and, with a bucket, reads the bucket's
// blocks too.
type Store struct {
	cfg    Config
	root   *os.Root
	dbs    *receive.MultiTSDB
	bucket objstore.Bucket
	reader *bucketReader // nil without a bucket
	// shards are the shards' TSDB handles, by shard number, and shardIndex
	// their numbers by tenant name; both are set by Open and never change.
	shards     []*receive.ReadyStorage
	shardIndex map[string]int
	// proxy serves the StoreAPI; fleet and partial read the fleet.
	proxy          *store.ProxyStore
	fleet, partial storage.Queryable
	remote         func() []store.Client // nil: no other replicas
	meta           *metadata.Store       // nil: metadata is dropped

	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the store and every shard's TSDB: their WALs are
// replayed, so every sample acknowledged before a crash is back. With a
// bucket it also syncs the bucket's blocks (waiting for the first sync at
// most a minute) and keeps syncing them every BucketSyncInterval until
// Close.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer, options ...Option) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metric store configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	dir := filepath.Join(cfg.Dir, shardsDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create tsdb dir %q: %w", dir, err)
	}
	if old := earlierTSDBs(cfg.Dir); len(old) > 0 {
		logger.Warn("the tsdb folder holds per-cluster TSDBs of an earlier hub, which are not read: series are kept in shards now; blocks of theirs shipped to the bucket stay queryable",
			"dir", cfg.Dir, "clusters", len(old), "first", old[0])
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open tsdb dir %q: %w", dir, err)
	}
	kit := kitlog.New(logger)
	s := &Store{cfg: cfg, root: root, shardIndex: make(map[string]int, cfg.Shards)}
	for _, o := range options {
		o(s)
	}
	if s.bucket, err = openBucket(cfg, kit); err != nil {
		_ = root.Close()
		return nil, err
	}
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = cfg.BlockDuration.Milliseconds()
	opts.MaxBlockDuration = cfg.BlockDuration.Milliseconds()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	opts.NoLockfile = false
	// Prometheus sizes a head for tens of millions of series, and every
	// shard would pay for it: 16384 stripes cost 2.9 MiB of heap, and a 4
	// MiB chunk write buffer is allocated once its first head chunk goes to
	// disk (test/bench/ingest measures the RSS).
	opts.StripeSize = shardStripeSize
	opts.HeadChunksWriteBufferSize = shardChunkWriteBuffer
	// Each shard's head keeps its share of the exemplars in a ring buffer
	// allocated whole when the shard opens.
	opts.EnableExemplarStorage = cfg.MaxExemplars > 0
	opts.MaxExemplars = exemplarsPerShard(cfg.MaxExemplars, cfg.Shards)
	external := labels.EmptyLabels()
	if cfg.Replica != "" {
		external = labels.FromStrings(cfg.ReplicaLabel, cfg.Replica)
	}
	s.dbs = receive.NewMultiTSDB(root, kit, prometheus.WrapRegistererWithPrefix("fleetpulse_hub_", reg), opts,
		external, ShardLabel, s.bucket, false, false, blockmeta.NoneFunc)
	if err := s.openShards(); err != nil {
		s.dbs.Close()
		_ = s.closeBucket()
		_ = root.Close()
		return nil, fmt.Errorf("open TSDBs in %q: %w", dir, err)
	}
	if s.bucket != nil {
		if s.reader, err = newBucketReader(s.bucket, bucketCacheDir(cfg.Dir), kit, reg); err != nil {
			s.dbs.Close()
			_ = s.closeBucket()
			_ = root.Close()
			return nil, err
		}
		s.reader.start(cfg.BucketSyncInterval)
	}
	s.buildProxies(kit, reg)
	return s, nil
}

// openShards opens (or creates) every shard's TSDB, replaying its WAL, and
// keeps their handles. A shard folder past the configured count (the count
// was lowered) is opened too: its series stay queryable until retention
// drops them.
func (s *Store) openShards() error {
	if err := s.dbs.Open(); err != nil {
		return err
	}
	for i := range s.cfg.Shards {
		name := shardName(i)
		a, err := s.dbs.TenantAppendable(name)
		if err != nil {
			return fmt.Errorf("shard %s: %w", name, err)
		}
		rs, ok := a.(*receive.ReadyStorage)
		if !ok {
			return fmt.Errorf("shard %s: unexpected storage %T", name, a)
		}
		s.shards = append(s.shards, rs)
		s.shardIndex[name] = i
	}
	return nil
}

// StoreServer serves Thanos's StoreAPI over this replica's data: the local
// TSDBs and the bucket's blocks this replica shipped, each series labelled
// with its cluster and the replica label, without the hub's internal
// labels.
func (s *Store) StoreServer() *store.ProxyStore { return s.proxy }

// Appender returns an appender for the cluster's series: into its shard's
// TSDB, stamping every series with cluster="<cluster>". ErrNotReady means
// the TSDB is not open (the store is closing).
func (s *Store) Appender(ctx context.Context, cluster string) (storage.Appender, error) {
	app, err := s.shardAppender(ctx, shardOf(cluster, len(s.shards)))
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cluster, err)
	}
	return &clusterStamp{Appender: app, cluster: cluster, meta: pendingMetadata{store: s.meta}}, nil
}

func (s *Store) shardAppender(ctx context.Context, shard int) (storage.Appender, error) {
	app, err := s.shards[shard].Appender(ctx)
	if err != nil {
		return nil, fmt.Errorf("shard %s: %w", shardName(shard), err)
	}
	return app, nil
}

// Flush cuts the heads into blocks and, with a bucket, ships them and syncs
// the bucket store, which then serves them.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.dbs.Flush(); err != nil {
		return fmt.Errorf("flush heads: %w", err)
	}
	if s.bucket != nil {
		if _, err := s.dbs.SyncAllTenants(ctx); err != nil {
			return fmt.Errorf("ship blocks: %w", err)
		}
		if err := s.reader.sync(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the bucket sync, closes every TSDB and the bucket client; the
// WAL keeps what the heads held. Later calls return the first one's error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.reader != nil {
			errs = append(errs, s.reader.stop())
		}
		s.dbs.Close()
		s.closeErr = errors.Join(append(errs, s.closeBucket(), s.root.Close())...)
	})
	return s.closeErr
}

// bucketComponent names the hub to object storage (the S3 client's user agent).
const bucketComponent = "fleetpulse-hub"

// openBucket builds the bucket that blocks ship to through objstore's client,
// as Thanos components do: from the configuration file, or a FILESYSTEM
// bucket for the BucketDir shorthand. Without either it returns nil.
func openBucket(cfg Config, logger log.Logger) (objstore.Bucket, error) {
	switch {
	case cfg.BucketConfigFile != "":
		content, err := readBucketConfig(cfg.BucketConfigFile)
		if err != nil {
			return nil, err
		}
		bkt, err := client.NewBucket(logger, content, bucketComponent, nil)
		if err != nil {
			// objstore's parse errors may quote a value of the file; drop it.
			return nil, fmt.Errorf("open bucket from %q (--storage.bucket.config-file): %s", cfg.BucketConfigFile, redactYAMLError(err))
		}
		return bkt, nil
	case cfg.BucketDir != "":
		conf := &client.BucketConfig{Type: objstore.FILESYSTEM, Config: filesystem.Config{Directory: filepath.Clean(cfg.BucketDir)}}
		bkt, err := client.NewBucketFromConfig(logger, conf, bucketComponent, nil)
		if err != nil {
			return nil, fmt.Errorf("open bucket %q (--storage.bucket.path): %w", cfg.BucketDir, err)
		}
		return bkt, nil
	}
	return nil, nil
}

func (s *Store) closeBucket() error {
	if s.bucket == nil {
		return nil
	}
	if err := s.bucket.Close(); err != nil {
		return fmt.Errorf("close bucket: %w", err)
	}
	return nil
}
