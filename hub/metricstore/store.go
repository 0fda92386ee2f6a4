package metricstore

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/providers/filesystem"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"
	"github.com/thanos-io/thanos/pkg/component"
	"github.com/thanos-io/thanos/pkg/dedup"
	"github.com/thanos-io/thanos/pkg/query"
	"github.com/thanos-io/thanos/pkg/receive"
	"github.com/thanos-io/thanos/pkg/store"
)

// Store holds every cluster's TSDB.
type Store struct {
	cfg    Config
	root   *os.Root
	dbs    *receive.MultiTSDB
	bucket objstore.Bucket
	fleet  storage.Queryable
}

// Open opens (or creates) the store: existing tenants' WALs are replayed, so
// every sample acknowledged before a crash is back.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metric store configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create tsdb dir %q: %w", cfg.Dir, err)
	}
	root, err := os.OpenRoot(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("open tsdb dir %q: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, root: root}
	if cfg.BucketDir != "" {
		if s.bucket, err = filesystem.NewBucket(filepath.Clean(cfg.BucketDir)); err != nil {
			_ = root.Close()
			return nil, fmt.Errorf("open bucket %q: %w", cfg.BucketDir, err)
		}
	}
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = cfg.BlockDuration.Milliseconds()
	opts.MaxBlockDuration = cfg.BlockDuration.Milliseconds()
	opts.RetentionDuration = cfg.Retention.Milliseconds()
	opts.OutOfOrderTimeWindow = cfg.OutOfOrderWindow.Milliseconds()
	opts.NoLockfile = false
	kit := kitLogger(logger)
	s.dbs = receive.NewMultiTSDB(root, kit, prometheus.WrapRegistererWithPrefix("fleetpulse_hub_", reg), opts,
		labels.EmptyLabels(), ClusterLabel, s.bucket, false, false, blockmeta.NoneFunc)
	if err := s.dbs.Open(); err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("open tenant TSDBs in %q: %w", cfg.Dir, err)
	}
	proxy := store.NewProxyStore(kit, reg, s.dbs.TSDBLocalClients, component.Query, labels.EmptyLabels(), 0, store.EagerRetrieval)
	creator := query.NewQueryableCreator(kit, prometheus.WrapRegistererWithPrefix("fleetpulse_hub_query_", reg), proxy, 4, time.Minute, dedup.AlgorithmPenalty, 64)
	s.fleet = creator(false, nil, nil, 0, false, false, nil, query.NoopSeriesStatsReporter)
	return s, nil
}

// Queryable reads every cluster's series, each labelled cluster="<name>".
func (s *Store) Queryable() storage.Queryable { return s.fleet }

// Appender returns an appender into the cluster's TSDB, creating the TSDB on
// first use. ErrNotReady means the TSDB is still opening: ask again shortly.
func (s *Store) Appender(ctx context.Context, cluster string) (storage.Appender, error) {
	a, err := s.dbs.TenantAppendable(cluster)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", cluster, err)
	}
	app, err := a.Appender(ctx)
	if err != nil {
		return nil, fmt.Errorf("tenant %q: %w", cluster, err)
	}
	return clusterLabelGuard{Appender: app}, nil
}

// Flush cuts the heads into blocks and, with a bucket, ships them.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.dbs.Flush(); err != nil {
		return fmt.Errorf("flush heads: %w", err)
	}
	if s.bucket != nil {
		if _, err := s.dbs.SyncAllTenants(ctx); err != nil {
			return fmt.Errorf("ship blocks: %w", err)
		}
	}
	return nil
}

// Close closes every TSDB; the WAL keeps what the heads held.
func (s *Store) Close() error {
	s.dbs.Close()
	return s.root.Close()
}
