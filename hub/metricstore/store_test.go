package metricstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
)

// TestBlocksShipToBucketAndReadBack appends to two clusters, flushes the
// heads into blocks that ship to a filesystem bucket, reopens the store and
// reads every series back, labelled by cluster.
func TestBlocksShipToBucketAndReadBack(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.BucketDir = t.TempDir(), t.TempDir()
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute)
	for _, cluster := range []string{"cluster-a", "cluster-b"} {
		a, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		// A writer's own cluster label is replaced: its identity decides.
		if _, err := a.Append(0, labels.FromStrings("__name__", "shipped_probe", "cluster", "spoofed"), ts.UnixMilli(), 1); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var metas []string
	_ = filepath.Walk(cfg.BucketDir, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Name() == "meta.json" {
			metas = append(metas, p)
		}
		return nil
	})
	if want := len(probeShards(cfg)); len(metas) != want {
		t.Errorf("bucket holds %d blocks, want one per shard written to (%d): %v", len(metas), want, metas)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := engine.NewInstantQuery(context.Background(), s.Queryable(), nil, `shipped_probe`, ts)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	got := res.Value.String()
	for _, want := range []string{`cluster="cluster-a"`, `cluster="cluster-b"`} {
		if !strings.Contains(got, want) {
			t.Errorf("after reopen: %s, want a series with %s", got, want)
		}
	}
	if strings.Contains(got, "spoofed") {
		t.Errorf("a writer's cluster label survived: %s", got)
	}
}

// TestRoutingAppendableStoresByClusterLabel writes rule output the way the
// rules manager does and reads it back as it was written: a series naming a
// cluster in that cluster's shard, one naming none without a cluster label.
func TestRoutingAppendableStoresByClusterLabel(t *testing.T) {
	t.Parallel()
	cfg := DefaultConfig()
	cfg.Dir = t.TempDir()
	s, err := Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := time.Now().Add(-time.Minute).UnixMilli()
	deadline := time.Now().Add(10 * time.Second)
	for {
		app := s.RoutingAppendable().Appender(context.Background())
		_, err1 := app.Append(0, labels.FromStrings("__name__", "cluster:probe:sum", "cluster", "east"), ts, 3)
		_, err2 := app.Append(0, labels.FromStrings("__name__", "fleet:probe:sum"), ts, 7)
		if err := errors.Join(err1, err2); err != nil {
			_ = app.Rollback()
			if time.Now().After(deadline) {
				t.Fatalf("append never succeeded: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
		break
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	for query, want := range map[string]string{
		`cluster:probe:sum`: `{__name__="cluster:probe:sum", cluster="east"} => 3 `,
		`fleet:probe:sum`:   `{__name__="fleet:probe:sum"} => 7 `,
	} {
		q, err := engine.NewInstantQuery(context.Background(), s.Queryable(), nil, query, time.UnixMilli(ts))
		if err != nil {
			t.Fatal(err)
		}
		res := q.Exec(context.Background())
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		if got := res.Value.String(); !strings.HasPrefix(got, want) {
			t.Errorf("%s = %q, want %q", query, got, want)
		}
	}
}
