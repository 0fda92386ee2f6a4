package metricstore

import (
	"errors"
	"fmt"
	"time"
)

// ClusterLabel is the label every series carries on reads: the tenant, which
// is the name of the cluster that wrote it.
const ClusterLabel = "cluster"

// Config configures the store.
type Config struct {
	// Dir holds one TSDB folder per cluster.
	Dir string
	// Retention is how long local blocks are kept.
	Retention time.Duration
	// BlockDuration is the head's block range; blocks of this length are cut
	// and, with a bucket, shipped.
	BlockDuration time.Duration
	// OutOfOrderWindow accepts samples this much older than a series' newest,
	// as an agent replaying its disk queue after an outage sends them.
	OutOfOrderWindow time.Duration
	// BucketDir is a filesystem object-storage bucket for shipped blocks;
	// empty ships nothing.
	BucketDir string
}

// DefaultConfig returns the defaults: 15 days local retention, 2 h blocks, a
// 1 h out-of-order window.
func DefaultConfig() Config {
	return Config{Dir: "data/tsdb", Retention: 15 * 24 * time.Hour, BlockDuration: 2 * time.Hour, OutOfOrderWindow: time.Hour}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("tsdb path is required"))
	}
	if c.Retention < c.BlockDuration {
		errs = append(errs, fmt.Errorf("retention %s is shorter than the block duration %s", c.Retention, c.BlockDuration))
	}
	if c.BlockDuration < time.Minute {
		errs = append(errs, fmt.Errorf("block duration %s: want at least 1m", c.BlockDuration))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("out-of-order window must not be negative, got %s", c.OutOfOrderWindow))
	}
	return errors.Join(errs...)
}
