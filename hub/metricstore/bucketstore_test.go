package metricstore

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/component"
	"github.com/thanos-io/thanos/pkg/dedup"
	"github.com/thanos-io/thanos/pkg/query"
	"github.com/thanos-io/thanos/pkg/store"
	"go.uber.org/goleak"
)

// probeSamples is how many samples writeProbes writes per series: three
// hours at 15 s, so the heads flush into more than one 2 h block.
const (
	probeSamples = 720
	probeStep    = 15 * time.Second
)

var probeClusters = []string{"cluster-a", "cluster-b"}

// writeProbes writes two series of probeSamples samples to each cluster,
// starting at start, and returns the time of the last sample. Sample k of
// series i has the value 1000*i + k. MultiTSDB's Flush leaves a head's
// newest sample in the head (its last range head ends at MaxTime-1), so a
// marker series gets one sample after the probes' last, and Flush puts every
// probe sample in a block.
func writeProbes(t *testing.T, s *Store, start time.Time) time.Time {
	t.Helper()
	for _, cluster := range probeClusters {
		a, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		for k := range probeSamples {
			for i := range 2 {
				ts := start.Add(time.Duration(k) * probeStep).UnixMilli()
				if _, err := a.Append(0, labels.FromStrings(model.MetricNameLabel, "probe", "i", fmt.Sprint(i)), ts, float64(1000*i+k)); err != nil {
					t.Fatal(err)
				}
			}
		}
		marker := start.Add(probeSamples * probeStep).UnixMilli()
		if _, err := a.Append(0, labels.FromStrings(model.MetricNameLabel, "flush_marker"), marker, 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	return start.Add((probeSamples - 1) * probeStep)
}

// probeShards is the set of shards the probe clusters are stored in.
func probeShards(cfg Config) map[int]bool {
	shards := map[int]bool{}
	for _, c := range probeClusters {
		shards[shardOf(c, cfg.Shards)] = true
	}
	return shards
}

// oldStart is three days ago, on a 2 h boundary: past the head, in blocks.
func oldStart() time.Time {
	return time.Now().Add(-72 * time.Hour).Truncate(2 * time.Hour)
}

// wantProbes is what count_over_time and sum_over_time over n writes of
// writeProbes read when every sample is counted once.
func wantProbes(fn string, n int) string {
	var lines []string
	for _, cluster := range probeClusters {
		for i := range 2 {
			v := n * probeSamples
			if fn == "sum_over_time" {
				v = n * (1000*i*probeSamples + probeSamples*(probeSamples-1)/2)
			}
			lines = append(lines, fmt.Sprintf(`{cluster="%s", i="%d"} => %d`, cluster, i, v))
		}
	}
	return strings.Join(lines, "\n")
}

// instant evaluates expr over q at ts and returns its series sorted, one
// `{labels} => value` line each.
func instant(t *testing.T, q storage.Queryable, expr string, ts time.Time) string {
	t.Helper()
	got, err := tryInstant(q, expr, ts)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func tryInstant(q storage.Queryable, expr string, ts time.Time) (string, error) {
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1 << 20, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(context.Background(), q, nil, expr, ts)
	if err != nil {
		return "", err
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		return "", fmt.Errorf("%s: %w", expr, res.Err)
	}
	vec, err := res.Vector()
	if err != nil {
		return "", fmt.Errorf("%s: %w", expr, err)
	}
	lines := make([]string, 0, len(vec))
	for _, s := range vec {
		lines = append(lines, fmt.Sprintf("%s => %s", s.Metric, strconv.FormatFloat(s.F, 'f', -1, 64)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n"), nil
}

// checkProbes reads every probe sample of n writes through q, the last one
// ending at last: each series once, with its cluster label, every sample
// counted once.
func checkProbes(t *testing.T, name string, q storage.Queryable, last time.Time, n int) {
	t.Helper()
	for _, fn := range []string{"count_over_time", "sum_over_time"} {
		expr := fmt.Sprintf("%s(probe[%s])", fn, model.Duration(time.Duration(n*probeSamples)*probeStep))
		if got, want := instant(t, q, expr, last), wantProbes(fn, n); got != want {
			t.Errorf("%s: %s =\n%s\nwant\n%s", name, expr, got, want)
		}
	}
}

// TestBucketBlocksReadWithoutLocalTSDB ships two clusters' old samples to a
// filesystem bucket, deletes the local TSDBs (a lost disk, or blocks past
// local retention) and reads every sample back from the bucket, labelled by
// cluster; then writes newer samples locally and reads across the seam of
// bucket-only and local blocks.
func TestBucketBlocksReadWithoutLocalTSDB(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.BucketDir = t.TempDir(), t.TempDir()
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := writeProbes(t, s, oldStart())
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cfg.Dir); err != nil {
		t.Fatal(err)
	}

	s, err = Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range s.shards {
		if blocks := s.localBlocks(shardName(i)); len(blocks) != 0 {
			t.Fatalf("shard %d holds %d blocks after deleting the local disk, want none", i, len(blocks))
		}
	}
	checkProbes(t, "bucket only", s.Queryable(), last, 1)
	// Series and label values come from the bucket's blocks too.
	if got, want := instant(t, s.Queryable(), `count by (cluster) (probe)`, last), "{cluster=\"cluster-a\"} => 2\n{cluster=\"cluster-b\"} => 2"; got != want {
		t.Errorf("count by (cluster) (probe) =\n%s\nwant\n%s", got, want)
	}
	q, err := s.Queryable().Querier(last.Add(-time.Hour).UnixMilli(), last.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(context.Background(), ClusterLabel, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(vals, probeClusters) {
		t.Errorf("cluster label values = %q, want %q", vals, probeClusters)
	}

	// The next three hours go to the new local TSDBs and are shipped too: a
	// query across both reads the older blocks from the bucket only and the
	// newer from the local disk only, every sample once.
	last = writeProbes(t, s, last.Add(probeStep))
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	clients := s.fleetClients()
	var ranges []string
	for _, c := range clients {
		if b, ok := c.(*bucketClient); ok {
			ranges = append(ranges, fmt.Sprintf("%s [%s, %s]", b.lset, time.UnixMilli(b.mint).UTC(), time.UnixMilli(b.maxt).UTC()))
			if b.maxt >= last.Add(-(probeSamples-1)*probeStep).UnixMilli() {
				t.Errorf("bucket client %s reaches into the blocks the local TSDB holds", c)
			}
		}
	}
	if want := cfg.Shards + len(probeShards(cfg)); len(clients) != want {
		t.Errorf("the fleet reads %d stores, want %d: every shard's TSDB and the bucket's older blocks of the probes' shards: bucket %q", len(clients), want, ranges)
	}
	checkProbes(t, "old blocks in the bucket, new ones local", s.Queryable(), last, 2)
}

// TestBlockLocalAndInBucketCountedOnce reads blocks that are both in the
// local TSDBs and, shipped, in the bucket: every sample counts once. The
// store reads such a block from the local disk only; and when the bucket's
// copy is read too (forced here), Thanos's proxy store merges the identical
// series and drops the identical chunks, so the count is still exact.
func TestBlockLocalAndInBucketCountedOnce(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.BucketDir = t.TempDir(), t.TempDir()
	reg := prometheus.NewRegistry()
	s, err := Open(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	last := writeProbes(t, s, oldStart())
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	blocks := 0
	for _, g := range s.reader.blocks.Load().groups {
		blocks += len(g.blocks)
		if local := s.localBlocks(g.shard); len(local) != len(g.blocks) {
			t.Errorf("%s: %d blocks in the bucket, %d local, want the same", g.shard, len(g.blocks), len(local))
		}
	}
	if blocks < 2*len(probeShards(cfg)) {
		t.Fatalf("the bucket store lists %d blocks, want at least 2 per shard written to", blocks)
	}
	if got := len(s.fleetClients()); got != cfg.Shards {
		t.Errorf("the fleet reads %d stores, want the %d shards' TSDBs only: every bucket block is local", got, cfg.Shards)
	}
	checkProbes(t, "local and bucket", s.Queryable(), last, 1)

	// The same blocks from each side alone, then from both at once.
	local := s.localClients
	bucket := func() []store.Client {
		return s.reader.clients(func(string) []ulid.ULID { return nil }, nil)
	}
	both := func() []store.Client { return append(slices.Clip(local()), bucket()...) }
	for name, clients := range map[string]func() []store.Client{"local only": local, "bucket only": bucket, "both": both} {
		if name != "local only" && len(bucket()) != len(probeShards(cfg)) {
			t.Fatalf("%s: %d bucket clients, want one per shard written to", name, len(bucket()))
		}
		checkProbes(t, name, queryable(clients), last, 1)
	}
}

// queryable is the fleet's Queryable over the given store clients.
func queryable(clients func() []store.Client) storage.Queryable {
	proxy := store.NewProxyStore(log.NewNopLogger(), nil, clients, component.Query, labels.EmptyLabels(), 0, store.EagerRetrieval)
	creator := query.NewQueryableCreator(log.NewNopLogger(), nil, proxy, 4, time.Minute, dedup.AlgorithmPenalty, 64)
	return creator(false, nil, nil, 0, false, false, nil, query.NoopSeriesStatsReporter)
}

// TestBucketSyncReadsNewBlocks opens a store on a fresh disk and an empty
// bucket, ships blocks to the bucket from another store, and reads them
// once the first store's periodic sync has found them; closing both stores
// leaves no goroutine behind.
func TestBucketSyncReadsNewBlocks(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	bucketDir := t.TempDir()
	readerCfg := DefaultConfig()
	readerCfg.Dir, readerCfg.BucketDir, readerCfg.BucketSyncInterval = t.TempDir(), bucketDir, 50*time.Millisecond
	reader, err := Open(readerCfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	writerCfg := DefaultConfig()
	writerCfg.Dir, writerCfg.BucketDir = t.TempDir(), bucketDir
	writer, err := Open(writerCfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	last := writeProbes(t, writer, oldStart())
	if err := writer.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := writer.Close(); err != nil {
		t.Fatal(err)
	}

	expr := fmt.Sprintf("count_over_time(probe[%s])", model.Duration(probeSamples*probeStep))
	want := wantProbes("count_over_time", 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Until a sync finds the blocks, the reader has no store to query.
		got, err := tryInstant(reader.Queryable(), expr, last)
		if err == nil && got == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after 30 s =\n%s (error %v)\nwant\n%s", expr, got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	checkProbes(t, "synced", reader.Queryable(), last, 1)
	if err := reader.Close(); err != nil {
		t.Fatal(err)
	}
}
