package metricstore_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestThanosStoreReadsShippedBlocks ships two clusters' samples to a real S3
// bucket, then runs Thanos v0.42.4's own `thanos store` over the bucket and
// `thanos query` over it: the blocks read back with their cluster label and
// every series counted, as the hub reads them.
func TestThanosStoreReadsShippedBlocks(t *testing.T) {
	s3 := testbed.StartS3(t)
	cfg := metricstore.DefaultConfig()
	cfg.Dir, cfg.BucketConfigFile = t.TempDir(), s3.BucketConfigFile(t)
	s, err := metricstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute)
	for c, cluster := range []string{"cluster-a", "cluster-b"} {
		a, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 * (c + 1) {
			if _, err := a.Append(0, labels.FromStrings("__name__", "shipped_probe", "i", fmt.Sprint(i)), ts.UnixMilli(), float64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	store := testbed.StartThanosStore(t, testbed.ThanosStoreOptions{BucketConfig: s3.BucketConfig()})
	querier := testbed.StartThanosQuery(t, testbed.ThanosQueryOptions{Endpoints: []string{store.GRPCAddr}})
	c, err := api.NewClient(api.Config{Address: querier.URL()})
	if err != nil {
		t.Fatal(err)
	}
	query := promv1.NewAPI(c)
	want := `{cluster="cluster-a"} 5; {cluster="cluster-b"} 10`
	testutil.Eventually(t, 2*time.Minute, func() error {
		v, _, err := query.Query(context.Background(), `count by (cluster) (shipped_probe)`, ts.Add(time.Second))
		if err != nil {
			return err
		}
		vec, _ := v.(model.Vector)
		var got []string
		for _, s := range vec {
			got = append(got, fmt.Sprintf("%s %s", s.Metric, s.Value))
		}
		sort.Strings(got)
		if g := strings.Join(got, "; "); g != want {
			return fmt.Errorf("count by (cluster) through thanos store and query = %q, want %q", g, want)
		}
		return nil
	})
	// The shard is the blocks' external label, which the hub's own reads
	// hide and thanos store adds to every series.
	v, _, err := query.Query(context.Background(), `count by (`+metricstore.ShardLabel+`) (shipped_probe)`, ts.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("series by shard through thanos store: %s", v)
}

// TestThanosCompactDownsamplesShippedBlocks ships four days of one
// cluster's samples to a real S3 bucket and runs Thanos v0.42.4's own
// `thanos compact` over it once: it downsamples the hub's block to 5 m
// resolution (Thanos downsamples blocks spanning over 40 h), keeping the
// shard as its external label.
func TestThanosCompactDownsamplesShippedBlocks(t *testing.T) {
	s3 := testbed.StartS3(t)
	cfg := metricstore.DefaultConfig()
	cfg.Dir, cfg.BucketConfigFile = t.TempDir(), s3.BucketConfigFile(t)
	s, err := metricstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const step, span = time.Minute, 96 * time.Hour
	start := time.Now().Add(-span - 2*time.Hour)
	a, err := s.Appender(context.Background(), "cluster-a")
	if err != nil {
		t.Fatal(err)
	}
	for k := range int(span / step) {
		ts := start.Add(time.Duration(k) * step).UnixMilli()
		if _, err := a.Append(0, labels.FromStrings("__name__", "compact_probe"), ts, float64(k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Append(0, labels.FromStrings("__name__", "flush_marker"), start.Add(span).UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	testbed.RunThanosCompact(t, s3.BucketConfig())

	bkt, err := s3.NewBucket()
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resolutions := map[int64]int{}
	for dir, meta := range blockMetas(ctx, t, bkt) {
		if meta.Thanos.Labels[metricstore.ShardLabel] == "" {
			t.Errorf("block %s has external labels %v, want its shard's", dir, meta.Thanos.Labels)
		}
		resolutions[meta.Thanos.Downsample.Resolution]++
	}
	t.Logf("blocks in the bucket after thanos compact, by resolution (ms): %v", resolutions)
	if resolutions[(5*time.Minute).Milliseconds()] == 0 {
		t.Errorf("no 5m-resolution block after thanos compact: blocks by resolution %v", resolutions)
	}
}
