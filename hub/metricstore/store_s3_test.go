package metricstore_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/thanos-io/objstore"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestBlocksShipToS3Bucket runs the store against a real S3 server
// (SeaweedFS from the test bed) configured the way --storage.bucket.config-file
// is: two clusters' samples are flushed into blocks and shipped, and the
// bucket then holds one block per cluster whose meta.json carries the
// cluster as its external label, and a store on a fresh disk reads them back
// from S3, labelled by cluster. The S3 secret key never reaches the logs.
func TestBlocksShipToS3Bucket(t *testing.T) {
	s3 := testbed.StartS3(t)
	cfg := metricstore.DefaultConfig()
	cfg.Dir, cfg.BucketConfigFile = t.TempDir(), s3.BucketConfigFile(t)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := metricstore.Open(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Now().Add(-time.Minute)
	clusters := []string{"cluster-a", "cluster-b"}
	for _, cluster := range clusters {
		a, err := s.Appender(context.Background(), cluster)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 10 {
			if _, err := a.Append(0, labels.FromStrings("__name__", "shipped_probe", "i", string(rune('a'+i))), ts.UnixMilli(), float64(i)); err != nil {
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

	bkt, err := s3.NewBucket()
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var dirs []string
	if err := bkt.Iter(ctx, "", func(name string) error {
		dirs = append(dirs, name)
		return nil
	}); err != nil {
		t.Fatalf("list %s: %v", s3, err)
	}
	var samples uint64
	for _, dir := range dirs {
		meta := readMeta(ctx, t, bkt, dir)
		shard := meta.Thanos.Labels[metricstore.ShardLabel]
		if shard == "" {
			t.Errorf("block %s has external labels %v, want its shard's %s", dir, meta.Thanos.Labels, metricstore.ShardLabel)
		}
		samples += meta.Stats.NumSamples
		for _, f := range []string{"index", "chunks/000001"} {
			if ok, err := bkt.Exists(ctx, dir+f); err != nil || !ok {
				t.Errorf("block %s of %s: %s not in the bucket (err %v)", dir, shard, f, err)
			}
		}
	}
	if want := uint64(10 * len(clusters)); samples != want {
		t.Errorf("the bucket's blocks (dirs %q) hold %d samples, want %d: 10 of each of %q", dirs, samples, want, clusters)
	}

	// A store on a fresh disk (a lost one) reads the blocks from S3.
	cfg.Dir = t.TempDir()
	s, err = metricstore.Open(cfg, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q, err := engine.NewInstantQuery(ctx, s.Queryable(), nil, `count by (cluster) (shipped_probe)`, ts)
	if err != nil {
		t.Fatal(err)
	}
	res := q.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if got := res.Value.String(); !strings.Contains(got, `{cluster="cluster-a"} => 10 @[`) || !strings.Contains(got, `{cluster="cluster-b"} => 10 @[`) {
		t.Errorf("from S3 on a fresh disk: count by (cluster) (shipped_probe) = %s, want 10 series of each cluster", got)
	}
	q.Close()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), s3.SecretKey) {
		t.Errorf("the S3 secret key is in the store's logs:\n%s", logs.String())
	}

	// The server checks signatures: a wrong secret key fails the flush, and
	// neither key shows in the error or the logs.
	wrong := strings.Replace(s3.BucketConfig(), s3.SecretKey, "wrong-"+s3.SecretKey[6:], 1)
	if err := os.WriteFile(cfg.BucketConfigFile, []byte(wrong), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Dir = t.TempDir()
	logs = &syncBuffer{}
	s, err = metricstore.Open(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := s.Appender(context.Background(), "cluster-c")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Append(0, labels.FromStrings("__name__", "shipped_probe"), ts.UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
	err = s.Flush(context.Background())
	if err == nil {
		t.Fatal("Flush() with a wrong S3 secret key = nil, want an error")
	}
	t.Logf("Flush() with a wrong secret key: %v", err)
	for _, key := range []string{s3.SecretKey[6:], s3.SecretKey} {
		if strings.Contains(err.Error()+logs.String(), key) {
			t.Errorf("a secret key is in the error or the logs: %v\n%s", err, logs.String())
		}
	}
}

func readMeta(ctx context.Context, t *testing.T, bkt objstore.Bucket, dir string) *blockmeta.Meta {
	t.Helper()
	rc, err := bkt.Get(ctx, dir+blockmeta.MetaFilename)
	if err != nil {
		t.Fatalf("read %s%s: %v", dir, blockmeta.MetaFilename, err)
	}
	meta, err := blockmeta.Read(rc)
	if err != nil {
		t.Fatalf("parse %s%s: %v", dir, blockmeta.MetaFilename, err)
	}
	return meta
}

// syncBuffer is a bytes.Buffer safe for the store's concurrent loggers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
