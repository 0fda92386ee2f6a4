package metricstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/thanos/pkg/block"
	blockmeta "github.com/thanos-io/thanos/pkg/block/metadata"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestThanosCompactsReplicasBlocks has two hub replicas ship four days of
// one cluster's samples each to one S3 bucket, blocks of the same shard and
// time, and runs Thanos v0.42.4's own `thanos compact` once over it: the
// replica label keeps each replica's blocks a stream of its own, and each
// is downsampled to 5 m with its shard and replica labels. With the raw
// blocks then removed from the bucket (as raw retention does), `thanos
// store` and `thanos query --query.replica-label` read the downsampled
// blocks: every cluster, once, without the replica label.
func TestThanosCompactsReplicasBlocks(t *testing.T) {
	s3 := testbed.StartS3(t)
	bucketFile := s3.BucketConfigFile(t)
	const step, span = time.Minute, 96 * time.Hour
	start := time.Now().Add(-span - 2*time.Hour).Truncate(time.Hour)
	for _, r := range []struct{ replica, cluster string }{{"hub-0", "cluster-a"}, {"hub-1", "cluster-b"}} {
		cfg := metricstore.DefaultConfig()
		cfg.Dir, cfg.BucketConfigFile, cfg.Shards, cfg.Replica = t.TempDir(), bucketFile, 1, r.replica
		s, err := metricstore.Open(cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Appender(context.Background(), r.cluster)
		if err != nil {
			t.Fatal(err)
		}
		for k := range int(span / step) {
			if _, err := a.Append(0, labels.FromStrings("__name__", "compact_probe"), start.Add(time.Duration(k)*step).UnixMilli(), float64(k)); err != nil {
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
	}

	testbed.RunThanosCompact(t, s3.BucketConfig())

	bkt, err := s3.NewBucket()
	if err != nil {
		t.Fatal(err)
	}
	defer bkt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	downsampled := map[string]bool{}
	var raw []ulid.ULID
	for dir, meta := range blockMetas(ctx, t, bkt) {
		l := meta.Thanos.Labels
		if l[metricstore.ShardLabel] == "" || l[metricstore.DefaultReplicaLabel] == "" {
			t.Errorf("block %s has external labels %v, want its shard's and its replica's", dir, l)
		}
		switch meta.Thanos.Downsample.Resolution {
		case 0:
			raw = append(raw, meta.ULID)
		case (5 * time.Minute).Milliseconds():
			downsampled[l[metricstore.DefaultReplicaLabel]] = true
		}
	}
	if !downsampled["hub-0"] || !downsampled["hub-1"] {
		t.Fatalf("5m-resolution blocks after thanos compact, by replica: %v; want one for each replica", downsampled)
	}
	for _, id := range raw {
		if err := block.Delete(ctx, log.NewNopLogger(), bkt, id); err != nil {
			t.Fatal(err)
		}
	}

	store := testbed.StartThanosStore(t, testbed.ThanosStoreOptions{BucketConfig: s3.BucketConfig()})
	querier := testbed.StartThanosQuery(t, testbed.ThanosQueryOptions{Endpoints: []string{store.GRPCAddr},
		ReplicaLabels: []string{metricstore.DefaultReplicaLabel}})
	at := start.Add(span / 2)
	want := `{cluster="cluster-a"} 1; {cluster="cluster-b"} 1`
	testutil.Eventually(t, 2*time.Minute, func() error {
		got, err := thanosQuery(querier.HTTPAddr, `count by (cluster, `+metricstore.DefaultReplicaLabel+`) (compact_probe)`, at, "5m")
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("count by (cluster, replica) through thanos store and query over the downsampled blocks = %q, want %q", got, want)
		}
		return nil
	})
}

// blockMetas reads the meta.json of every block in the bucket, by folder.
func blockMetas(ctx context.Context, t *testing.T, bkt objstore.Bucket) map[string]blockmeta.Meta {
	t.Helper()
	out := map[string]blockmeta.Meta{}
	if err := bkt.Iter(ctx, "", func(dir string) error {
		if !strings.HasSuffix(dir, "/") || strings.HasPrefix(dir, "debug") {
			return nil
		}
		rc, err := bkt.Get(ctx, dir+"meta.json")
		if err != nil {
			return nil // a folder without a block, such as the deletion marks'
		}
		defer rc.Close()
		var meta blockmeta.Meta
		if err := json.NewDecoder(rc).Decode(&meta); err != nil {
			return fmt.Errorf("meta.json of %s: %w", dir, err)
		}
		out[dir] = meta
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// thanosQuery runs an instant query on thanos query's HTTP API at the given
// max source resolution, and returns its samples as "labels value; ...",
// sorted.
func thanosQuery(addr, query string, at time.Time, resolution string) (string, error) {
	q := url.Values{"query": {query}, "time": {fmt.Sprint(at.Unix())}, "max_source_resolution": {resolution}}
	resp, err := http.Get("http://" + addr + "/api/v1/query?" + q.Encode())
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return "", err
	}
	var got []string
	for _, s := range r.Data.Result {
		got = append(got, fmt.Sprintf("%s %v", labels.FromMap(s.Metric), s.Value[1]))
	}
	sort.Strings(got)
	return strings.Join(got, "; "), nil
}
