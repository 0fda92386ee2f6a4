package metricstore

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/thanos-io/objstore"
	"sigs.k8s.io/yaml"
)

// ClusterLabel is the label every series carries: the name of the cluster
// that wrote it, set by the store from the writer's identity.
const ClusterLabel = "cluster"

// MaxShards bounds Config.Shards: each shard is a TSDB with its own head,
// WAL and open files.
const MaxShards = 1024

// DefaultReplicaLabel is the external label that names a hub replica.
const DefaultReplicaLabel = "fleetpulse_replica"

// Config configures the store.
type Config struct {
	// Dir holds the TSDBs, one per shard, in its folder "shards".
	Dir string
	// Shards is how many TSDBs the clusters' series are spread over, by a
	// hash of the cluster's name. A TSDB per cluster would cost every
	// cluster 1.5 MiB and 4 open files; a shard holds many clusters, and
	// more shards write, compact and ship in smaller pieces.
	Shards int
	// Retention is how long local blocks are kept.
	Retention time.Duration
	// BlockDuration is the head's block range; blocks of this length are cut
	// and, with a bucket, shipped.
	BlockDuration time.Duration
	// OutOfOrderWindow accepts samples this much older than a series' newest,
	// as an agent replaying its disk queue after an outage sends them.
	OutOfOrderWindow time.Duration
	// BucketDir is a filesystem object-storage bucket for shipped blocks
	// (--storage.bucket.path), shorthand for a FILESYSTEM BucketConfigFile.
	// Empty, with no BucketConfigFile, ships nothing.
	BucketDir string
	// BucketConfigFile is a Thanos object-storage bucket configuration
	// (--storage.bucket.config-file): YAML with "type" (S3, FILESYSTEM, GCS,
	// AZURE, SWIFT, COS, ALIYUNOSS, BOS, OCI, OBS), "config" (the provider's
	// settings) and an optional "prefix", as every Thanos component reads it.
	// It may hold secrets: its content is never logged. At most one of
	// BucketDir and BucketConfigFile is set.
	BucketConfigFile string
	// BucketSyncInterval is how often the bucket's block list is read again,
	// so that queries read blocks shipped since (Flush syncs at once). The
	// bucket store caches index-headers in the folder "<Dir>/bucket-cache".
	BucketSyncInterval time.Duration
	// MaxExemplars is how many exemplars the store keeps, over all shards:
	// each shard's head keeps its share in a ring buffer (64 bytes an
	// exemplar, allocated when the shard opens, and its labels), the
	// newest replacing the oldest. 0 keeps none. Exemplars are kept in the
	// heads (and their WALs) only, not in blocks, as Prometheus keeps them.
	MaxExemplars int64
	// Replica names this hub among its replicas; empty (one hub) labels
	// nothing. Set, every block the store ships and every series its
	// StoreAPI serves carries ReplicaLabel="<Replica>" as an external
	// label: thanos compact then keeps each replica's blocks a stream of
	// their own rather than overlapping blocks of one, and thanos query
	// (--query.replica-label) and the hub's own queries deduplicate by it
	// the series several replicas hold. It must be stable across restarts
	// (a StatefulSet pod's name) and unique among the replicas.
	Replica string
	// ReplicaLabel is the name of that label.
	ReplicaLabel string
}

// DefaultConfig returns the defaults: 16 shards, 15 days local retention,
// 2 h blocks, a 1 h out-of-order window, a bucket sync every 3 minutes,
// 100,000 exemplars (Prometheus's default).
func DefaultConfig() Config {
	return Config{
		Dir: "data/tsdb", Shards: 16, Retention: 15 * 24 * time.Hour, BlockDuration: 2 * time.Hour, OutOfOrderWindow: time.Hour,
		BucketSyncInterval: 3 * time.Minute, MaxExemplars: 100_000, ReplicaLabel: DefaultReplicaLabel,
	}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("tsdb path is required"))
	}
	if c.Shards < 1 || c.Shards > MaxShards {
		errs = append(errs, fmt.Errorf("shards %d: want 1 to %d", c.Shards, MaxShards))
	}
	if c.Retention < c.BlockDuration {
		errs = append(errs, fmt.Errorf("retention %s is shorter than the block duration %s", c.Retention, c.BlockDuration))
	}
	if c.BlockDuration < time.Minute {
		errs = append(errs, fmt.Errorf("block duration %s: want at least 1m", c.BlockDuration))
	}
	if c.MaxExemplars < 0 {
		errs = append(errs, fmt.Errorf("max exemplars must not be negative, got %d", c.MaxExemplars))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("out-of-order window must not be negative, got %s", c.OutOfOrderWindow))
	}
	if (c.BucketDir != "" || c.BucketConfigFile != "") && c.BucketSyncInterval <= 0 {
		errs = append(errs, fmt.Errorf("bucket sync interval must be positive, got %s", c.BucketSyncInterval))
	}
	if c.BucketDir != "" && c.BucketConfigFile != "" {
		errs = append(errs, errors.New("bucket path (--storage.bucket.path) and bucket config file (--storage.bucket.config-file) are both set: "+
			"give one; the path is shorthand for a FILESYSTEM bucket config"))
	}
	if !model.LegacyValidation.IsValidLabelName(c.ReplicaLabel) || c.ReplicaLabel == ShardLabel || c.ReplicaLabel == ClusterLabel {
		errs = append(errs, fmt.Errorf("replica label %q: want a label name other than %s and %s", c.ReplicaLabel, ShardLabel, ClusterLabel))
	}
	if c.BucketConfigFile != "" {
		if _, err := readBucketConfig(c.BucketConfigFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// providers are the bucket types objstore's client builds.
var providers = []objstore.ObjProvider{
	objstore.FILESYSTEM, objstore.S3, objstore.GCS, objstore.AZURE, objstore.SWIFT,
	objstore.COS, objstore.ALIYUNOSS, objstore.BOS, objstore.OCI, objstore.OBS,
}

// readBucketConfig reads and checks the bucket configuration file. Its errors
// name the file and the field, never a value of it: the file holds secrets
// (an S3 secret_key) and errors end up in logs.
func readBucketConfig(path string) ([]byte, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bucket config file (--storage.bucket.config-file): %w", err)
	}
	var bc bucketConfig
	if err := yaml.UnmarshalStrict(content, &bc); err != nil {
		return nil, fmt.Errorf("bucket config file %q (--storage.bucket.config-file): not a bucket configuration (want YAML with type, config and optional prefix): %s",
			path, redactYAMLError(err))
	}
	if bc.Type == "" {
		return nil, fmt.Errorf("bucket config file %q (--storage.bucket.config-file): type is required (one of %s)", path, providerList())
	}
	known := false
	for _, p := range providers {
		if strings.EqualFold(bc.Type, string(p)) {
			known = true
		}
	}
	if !known {
		return nil, fmt.Errorf("bucket config file %q (--storage.bucket.config-file): type %q is not one of %s", path, bc.Type, providerList())
	}
	if bc.Config == nil {
		return nil, fmt.Errorf("bucket config file %q (--storage.bucket.config-file): config is required (the %s provider's settings)", path, bc.Type)
	}
	return content, nil
}

// bucketConfig has the fields of objstore/client.BucketConfig, which
// objstore parses again (strictly, with yaml.v2) when the store opens the
// bucket; Validate checks the file up to the provider's own settings.
type bucketConfig struct {
	Type   string `json:"type"`
	Config any    `json:"config"`
	Prefix string `json:"prefix"`
}

func providerList() string {
	names := make([]string, len(providers))
	for i, p := range providers {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// redactYAMLError keeps a YAML error's line numbers and field names and drops
// the values that YAML parsers quote in backticks (yaml.v2 quotes up to 7
// characters of one), which could be part of a secret.
func redactYAMLError(err error) string {
	msg := err.Error()
	var b strings.Builder
	for {
		i := strings.IndexByte(msg, '`')
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		j := strings.IndexByte(msg[i+1:], '`')
		if j < 0 {
			b.WriteString(msg)
			return b.String()
		}
		b.WriteString(msg[:i])
		b.WriteString("<value>")
		msg = msg[i+1+j+1:]
	}
}
