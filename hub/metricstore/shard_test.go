package metricstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"
	"github.com/thanos-io/thanos/pkg/receive"
)

// TestManyClustersShareShards writes 2,000 clusters' series: the store
// keeps Shards TSDBs however many clusters write, every series reads back
// once with the cluster that wrote it, and a writer's own cluster label
// cannot make a series read as another cluster's.
func TestManyClustersShareShards(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 8
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const clusters = 2000
	ts := time.Now().Add(-time.Minute)
	for i := range clusters {
		cluster := fmt.Sprintf("c-%04d", i)
		app, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		// Two samples of one series (the stamp of the first is reused), and
		// one series claiming to be another cluster's.
		l := labels.FromStrings("__name__", "probe", "node", "n1")
		for k := range 2 {
			if _, err := app.Append(0, l, ts.UnixMilli()+int64(k), float64(i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := app.Append(0, labels.FromStrings("__name__", "spoof", "cluster", "c-0000"), ts.UnixMilli(), float64(i)); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(cfg.Dir, shardsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != cfg.Shards {
		t.Errorf("%d TSDB folders for %d clusters, want the %d shards", len(entries), clusters, cfg.Shards)
	}
	used := map[int]bool{}
	for i := range clusters {
		used[shardOf(fmt.Sprintf("c-%04d", i), cfg.Shards)] = true
	}
	if len(used) != cfg.Shards {
		t.Errorf("clusters landed in %d of %d shards", len(used), cfg.Shards)
	}
	for expr, want := range map[string]string{
		`count(probe)`:                      fmt.Sprintf("{} => %d", clusters),
		`count(count by (cluster) (probe))`: fmt.Sprintf("{} => %d", clusters),
		`probe{cluster="c-1234"}`:           `{__name__="probe", cluster="c-1234", node="n1"} => 1234`,
		`count(spoof)`:                      fmt.Sprintf("{} => %d", clusters),
		`spoof{cluster="c-0000"}`:           `{__name__="spoof", cluster="c-0000"} => 0`,
	} {
		if got := instant(t, s.Queryable(), expr, ts.Add(time.Millisecond)); got != want {
			t.Errorf("%s =\n%s\nwant\n%s", expr, got, want)
		}
	}
	q, err := s.Queryable().Querier(ts.Add(-time.Minute).UnixMilli(), ts.Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	names, _, err := q.LabelNames(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == ShardLabel {
			t.Errorf("label names %q include the shard label", names)
		}
	}
}

// TestStampOf: a stamped label set is recognised as the stamp of the same
// labels, with or without a cluster label of the writer's, and of no other.
func TestStampOf(t *testing.T) {
	t.Parallel()
	stamped := labels.FromStrings("__name__", "up", "cluster", "a", "job", "x")
	for _, tc := range []struct {
		l    labels.Labels
		want bool
	}{
		{labels.FromStrings("__name__", "up", "job", "x"), true},
		{labels.FromStrings("__name__", "up", "cluster", "b", "job", "x"), true},
		{labels.FromStrings("__name__", "up", "job", "y"), false},
		{labels.FromStrings("__name__", "up"), false},
		{labels.FromStrings("__name__", "up", "job", "x", "pod", "p"), false},
		{labels.FromStrings("__name__", "up", "cluster", "b", "job", "x", "z", "1"), false},
		{labels.FromStrings("__name__", "up", ShardLabel, "s", "job", "x"), true},
	} {
		if got := stampOf(tc.l, stamped); got != tc.want {
			t.Errorf("stampOf(%s, %s) = %v, want %v", tc.l, stamped, got, tc.want)
		}
	}
	for _, l := range []labels.Labels{
		labels.EmptyLabels(),
		labels.FromStrings("__name__", "up"),
		labels.FromStrings("a", "1", "zz", "2"),
		labels.FromStrings("__name__", "up", "cluster", "b", "job", "x"),
		labels.FromStrings("cluster", "b"),
		labels.FromStrings("clusterx", "1"),
		labels.FromStrings("clust", "1", "z", "2"),
		labels.FromStrings("__name__", "up", ShardLabel, "s"),
	} {
		want := labels.NewBuilder(l).Set(ClusterLabel, "a").Del(ShardLabel).Labels()
		if got := appendStamped(nil, l, "a"); !labels.Equal(got, want) {
			t.Errorf("appendStamped(%s) = %s, want %s", l, got, want)
		}
	}
	if stampOf(labels.EmptyLabels(), labels.EmptyLabels()) {
		t.Error("an empty label set is nobody's stamp")
	}
	// A writer reusing its label array for the next series gets that
	// series' stamp, not the last one's.
	app := &clusterStamp{Appender: nopAppender{}, cluster: "a"}
	buf := labels.FromStrings("__name__", "up", "job", "x")
	first := app.stamp(buf)
	buf[1].Value = "y"
	if got := app.stamp(buf); got.Get("job") != "y" || first.Get("job") != "x" {
		t.Errorf("stamps %s then %s, want job x then y", first, got)
	}
}

type nopAppender struct{ storage.Appender }

// TestEarlierLayoutBlocksStayReadable ships blocks the way an earlier hub
// did (a TSDB per cluster, its blocks labelled with the cluster, its series
// without one) and reads them from the bucket with a store of shards, each
// series with its cluster.
func TestEarlierLayoutBlocksStayReadable(t *testing.T) {
	t.Parallel()
	bucketDir := t.TempDir()
	bkt, err := openBucket(Config{BucketDir: bucketDir}, log.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration, opts.MaxBlockDuration = (2 * time.Hour).Milliseconds(), (2 * time.Hour).Milliseconds()
	earlier := receive.NewMultiTSDB(root, log.NewNopLogger(), prometheus.NewRegistry(), opts,
		labels.EmptyLabels(), ClusterLabel, bkt, false, false, blockmeta.NoneFunc)
	start := oldStart()
	for _, cluster := range probeClusters {
		a, err := earlier.TenantAppendable(cluster)
		if err != nil {
			t.Fatal(err)
		}
		app, err := a.Appender(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for k := range 3 {
			if _, err := app.Append(0, labels.FromStrings("__name__", "probe"), start.Add(time.Duration(k)*time.Minute).UnixMilli(), float64(k)); err != nil {
				t.Fatal(err)
			}
		}
		// MultiTSDB's Flush keeps a head's newest sample out of its block.
		if _, err := app.Append(0, labels.FromStrings("__name__", "flush_marker"), start.Add(time.Hour).UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// The fleet tenant's series named no cluster.
	fa, err := earlier.TenantAppendable(earlierFleetTenant)
	if err != nil {
		t.Fatal(err)
	}
	fapp, err := fa.Appender(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []struct {
		name string
		ts   time.Time
	}{{"fleet_probe", start}, {"flush_marker", start.Add(time.Hour)}} {
		if _, err := fapp.Append(0, labels.FromStrings("__name__", f.name), f.ts.UnixMilli(), 7); err != nil {
			t.Fatal(err)
		}
	}
	if err := fapp.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := earlier.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := earlier.SyncAllTenants(context.Background()); err != nil {
		t.Fatal(err)
	}
	earlier.Close()
	_ = bkt.Close()

	cfg := DefaultConfig()
	cfg.Dir, cfg.BucketDir = t.TempDir(), bucketDir
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := start.Add(30 * time.Minute)
	for expr, want := range map[string]string{
		`count_over_time(probe[1h])`:                  "{cluster=\"cluster-a\"} => 3\n{cluster=\"cluster-b\"} => 3",
		`last_over_time(fleet_probe[1h])`:             `{__name__="fleet_probe"} => 7`,
		`fleet_probe{cluster="_fleet"}`:               "",
		`last_over_time(fleet_probe{cluster=""}[1h])`: `{__name__="fleet_probe"} => 7`,
	} {
		if got := instant(t, s.Queryable(), expr, at); got != want {
			t.Errorf("%s =\n%s\nwant\n%s", expr, got, want)
		}
	}
}

// TestShardLabelIsNoSeriesLabel: reads behave as if no series had the shard
// label — matchers on it decided as on an absent label, a writer's own
// shard label dropped on write (series differing only by it would read as
// one), the label in no name or value list.
func TestShardLabelIsNoSeriesLabel(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 4
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Now().Add(-time.Minute)
	write := func(cluster string, v float64, l labels.Labels) {
		t.Helper()
		app, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Append(0, l, ts.UnixMilli(), v); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []string{"a", "b", "c", "d", "e", "f"} {
		write(c, 1, labels.FromStrings("__name__", "probe"))
	}
	write("a", 2, labels.FromStrings("__name__", "own", ShardLabel, "x", "k", "1"))
	at := ts.Add(time.Millisecond)
	for expr, want := range map[string]string{
		`count(probe{fleetpulse_shard=""})`:           "{} => 6",
		`count(probe{fleetpulse_shard!="shard-000"})`: "{} => 6",
		`count(probe{fleetpulse_shard=~"shard.*"})`:   "",
		`probe{fleetpulse_shard="shard-001"}`:         "",
		`own`:                                         `{__name__="own", cluster="a", k="1"} => 2`,
	} {
		if got := instant(t, s.Queryable(), expr, at); got != want {
			t.Errorf("%s =\n%s\nwant\n%s", expr, got, want)
		}
	}
	q, err := s.Queryable().Querier(ts.Add(-time.Minute).UnixMilli(), ts.Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if vals, _, err := q.LabelValues(context.Background(), ShardLabel, nil); err != nil || len(vals) != 0 {
		t.Errorf("values of the shard label: %q (%v), want none", vals, err)
	}
	names, _, err := q.LabelNames(context.Background(), nil, labels.MustNewMatcher(labels.MatchEqual, ShardLabel, "shard-001"))
	if err != nil || len(names) != 0 {
		t.Errorf("label names of series with shard-001: %q (%v), want none", names, err)
	}
}
