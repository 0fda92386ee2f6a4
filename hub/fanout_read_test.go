package hub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestReplicaReadsPeersIntact runs two replicas: every series is written to
// one of them, and the other's /api/v1 answers many queries at once that
// read them through its peer's StoreAPI. Every answer must be whole: no
// query fails, every label value is one that was written and every sum is
// the written one. The series' labels and chunks arrive in gRPC messages
// that the query reads after the message was received, so a receive
// buffer reused under the query shows here as failed queries (a chunk cut
// short reads as EOF) or label values that were never written.
func TestReplicaReadsPeersIntact(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	peers := []string{testbed.FreeAddr(t), testbed.FreeAddr(t)}
	var replicas []*Hub
	for i := range peers {
		cfg := peerConfig(t, ca, peers, i)
		h, _ := runHub(t, cfg)
		replicas = append(replicas, h)
	}

	const clusters, podsPerCluster, samples = 20, 100, 20
	now := time.Now().Truncate(time.Second)
	var total float64
	for c := range clusters {
		cluster := fmt.Sprintf("read-%02d", c)
		var wr prompb.WriteRequest
		for p := range podsPerCluster {
			ts := prompb.TimeSeries{Labels: []prompb.Label{{Name: "__name__", Value: "read_probe"},
				{Name: "namespace", Value: fmt.Sprintf("namespace-%d", p%7)}, {Name: "pod", Value: fmt.Sprintf("pod-%s-%03d", cluster, p)}}}
			for k := range samples {
				ts.Samples = append(ts.Samples, prompb.Sample{Value: float64(c*podsPerCluster + p + k),
					Timestamp: now.Add(time.Duration(k-samples+1) * 15 * time.Second).UnixMilli()})
			}
			total += float64(c*podsPerCluster + p + samples - 1)
			wr.Timeseries = append(wr.Timeseries, ts)
		}
		mustWrite(t, ca, replicas[1], cluster, &wr)
	}

	api := hubAPI(t, replicas[0])
	testutil.Eventually(t, 30*time.Second, func() error {
		v, _, err := api.Query(context.Background(), `count(read_probe)`, now)
		if err != nil || v.String() != fmt.Sprintf("{} => %d @[%d]", clusters*podsPerCluster, now.Unix()) {
			return fmt.Errorf("replica 0 counts %v (%v), want its peer's %d series", v, err, clusters*podsPerCluster)
		}
		return nil
	})

	check := func() error {
		v, warnings, err := api.Query(context.Background(), `read_probe`, now)
		if err != nil {
			return fmt.Errorf("read_probe: %w", err)
		}
		vec, _ := v.(model.Vector)
		if len(vec) != clusters*podsPerCluster {
			return fmt.Errorf("read_probe answers %d series, want %d (warnings %q)", len(vec), clusters*podsPerCluster, warnings)
		}
		for _, s := range vec {
			cluster, pod := string(s.Metric["cluster"]), string(s.Metric["pod"])
			if !strings.HasPrefix(cluster, "read-") || pod != fmt.Sprintf("pod-%s-%s", cluster, pod[len(pod)-3:]) ||
				!strings.HasPrefix(string(s.Metric["namespace"]), "namespace-") {
				return fmt.Errorf("read_probe answers a series never written: %s", s.Metric)
			}
		}
		r, _, err := api.Query(context.Background(), `sum(read_probe)`, now)
		if err != nil {
			return fmt.Errorf("sum(read_probe): %w", err)
		}
		if got := r.(model.Vector); len(got) != 1 || float64(got[0].Value) != total {
			return fmt.Errorf("sum(read_probe) = %v, want %g", got, total)
		}
		return nil
	}
	const readers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, readers*rounds)
	for range readers {
		wg.Go(func() {
			for range rounds {
				if err := check(); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if failed < 5 {
			t.Error(err)
		}
		failed++
	}
	if failed > 0 {
		t.Errorf("%d of %d rounds of reads through the peer failed", failed, readers*rounds)
	}
}
