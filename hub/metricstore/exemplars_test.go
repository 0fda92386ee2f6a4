package metricstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
)

// clustersInShards returns one cluster name per shard.
func clustersInShards(shards int) []string {
	out := make([]string, shards)
	found := 0
	for i := 0; found < shards; i++ {
		name := fmt.Sprintf("c-%d", i)
		if sh := shardOf(name, shards); out[sh] == "" {
			out[sh] = name
			found++
		}
	}
	return out
}

// TestExemplarsReadOverShards appends exemplars for clusters in different
// shards and reads them back through the store's exemplar queryable:
// every cluster's, labelled by cluster, without the shard label, with
// matchers on the shard label decided as on an absent label; and the
// heads' statistics count every shard's series.
func TestExemplarsReadOverShards(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 2
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clusters := clustersInShards(cfg.Shards)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	for i, cluster := range clusters {
		app, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		l := labels.FromStrings("__name__", "request_seconds_bucket", "le", "1", ShardLabel, "spoofed")
		ref, err := app.Append(0, l, ts, float64(i))
		if err != nil {
			t.Fatal(err)
		}
		e := exemplar.Exemplar{Labels: labels.FromStrings("trace_id", fmt.Sprintf("trace-%d", i)), Value: 0.5, Ts: ts, HasTs: true}
		if _, err := app.AppendExemplar(ref, l, e); err != nil {
			t.Fatal(err)
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	q, err := s.ExemplarQueryable().ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	name := labels.MustNewMatcher(labels.MatchEqual, "__name__", "request_seconds_bucket")
	for _, tc := range []struct {
		name     string
		matchers []*labels.Matcher
		want     int
	}{
		{"every cluster's", []*labels.Matcher{name}, len(clusters)},
		{"one cluster's", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchEqual, ClusterLabel, clusters[1])}, 1},
		{"a shard label selects nothing", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchEqual, ShardLabel, shardName(0))}, 0},
		{"an empty shard label selects all", []*labels.Matcher{name, labels.MustNewMatcher(labels.MatchEqual, ShardLabel, "")}, len(clusters)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := q.Select(ts-1, ts+1, tc.matchers)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) != tc.want {
				t.Fatalf("got %d series, want %d: %v", len(res), tc.want, res)
			}
			for _, r := range res {
				if r.SeriesLabels.Has(ShardLabel) || !r.SeriesLabels.Has(ClusterLabel) {
					t.Errorf("series read as %s, want a cluster label and no shard label", r.SeriesLabels)
				}
				if len(r.Exemplars) != 1 || r.Exemplars[0].Labels.Get("trace_id") == "" {
					t.Errorf("series %s has exemplars %v, want its one", r.SeriesLabels, r.Exemplars)
				}
			}
		})
	}

	st, err := s.HeadStats("__name__", 10)
	if err != nil {
		t.Fatal(err)
	}
	if st.NumSeries != uint64(len(clusters)) || st.MinTime != ts || st.MaxTime != ts {
		t.Errorf("head stats: %d series from %d to %d, want %d at %d", st.NumSeries, st.MinTime, st.MaxTime, len(clusters), ts)
	}
	if m := st.IndexPostingStats.CardinalityMetricsStats; len(m) != 1 || m[0].Name != "request_seconds_bucket" || m[0].Count != uint64(len(clusters)) {
		t.Errorf("series by metric name = %v, want request_seconds_bucket summed over shards", m)
	}
}

// TestExemplarsOff checks that MaxExemplars 0 keeps none and refuses none.
func TestExemplarsOff(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir, cfg.Shards, cfg.MaxExemplars = t.TempDir(), 1, 0
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	app, err := s.Appender(context.Background(), "east")
	if err != nil {
		t.Fatal(err)
	}
	l := labels.FromStrings("__name__", "x")
	ts := time.Now().UnixMilli()
	ref, err := app.Append(0, l, ts, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.AppendExemplar(ref, l, exemplar.Exemplar{Labels: labels.FromStrings("trace_id", "t"), Ts: ts, HasTs: true}); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	q, err := s.ExemplarQueryable().ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := q.Select(0, ts+1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "x")})
	if err != nil || len(res) != 0 {
		t.Errorf("exemplars with MaxExemplars 0: %v, %v; want none", res, err)
	}
}

func TestExemplarsPerShard(t *testing.T) {
	for _, tc := range []struct {
		total  int64
		shards int
		want   int64
	}{{100_000, 16, 6250}, {10, 3, 4}, {0, 16, 0}, {1, 16, 1}} {
		if got := exemplarsPerShard(tc.total, tc.shards); got != tc.want {
			t.Errorf("exemplarsPerShard(%d, %d) = %d, want %d", tc.total, tc.shards, got, tc.want)
		}
	}
}
