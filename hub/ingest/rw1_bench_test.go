package ingest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
)

// benchSeries is one request's worth of a cluster's inventory: 1,000
// series of 8–10 labels (the shape of test/bench/ingest's load), one
// sample each.
func benchSeries() [][]prompb.Label {
	var out [][]prompb.Label
	for n := range 25 {
		for m := range 40 {
			out = append(out, []prompb.Label{
				{Name: "__name__", Value: fmt.Sprintf("k8s_metric_%d", m)},
				{Name: "fleetpulse_cluster_set", Value: "set-1"},
				{Name: "k8s_cluster_name", Value: "cluster-001"},
				{Name: "k8s_namespace_name", Value: fmt.Sprintf("namespace-%d", n%5)},
				{Name: "k8s_node_name", Value: fmt.Sprintf("cluster-001-node-%d", n)},
				{Name: "k8s_node_uid", Value: fmt.Sprintf("3f6c1a52-8e0b-4c55-9d1f-%012d", n)},
				{Name: "k8s_pod_name", Value: fmt.Sprintf("deployment-%d-7d9f8c6b5-x%dz", n, m)},
				{Name: "k8s_pod_uid", Value: fmt.Sprintf("9a1b2c3d-4e5f-4a6b-8c7d-%012d", n*100+m)},
			})
		}
	}
	return out
}

// BenchmarkRW1 decodes and appends the same remote-write 1.0 request
// (1,000 existing series, one sample each) through the handler, without
// TLS or a network, into a real store: "prometheus" is Prometheus's
// handler (the path before rw1.go, and still that of remote write 2.0),
// "fleetpulse" is rw1.go. Each iteration's request carries the next
// timestamp, so every sample is appended; building it is not timed.
func BenchmarkRW1(b *testing.B) {
	lbls := benchSeries()
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	body := func(step int) []byte {
		ts := make([]prompb.TimeSeries, len(lbls))
		for i, l := range lbls {
			ts[i] = prompb.TimeSeries{Labels: l, Samples: []prompb.Sample{{Timestamp: t0 + int64(step)*10, Value: float64(step + i)}}}
		}
		return rw1Body(b, ts...)
	}
	benchPaths(b, body, nil, len(lbls), func(h *handler) int64 { return h.rw1Served.Load() })
}

// benchPaths runs sub-benchmarks "prometheus" (Prometheus's handler) and
// "fleetpulse" (the hub's own path, which served counts and must answer
// every request): each appends body(0) to create the series, then times
// one request per iteration, body(i) not included, and reports samples/s
// (one sample per series).
func benchPaths(b *testing.B, body func(step int) []byte, header map[string]string, series int, served func(*handler) int64) {
	for _, path := range []struct {
		name string
		fast bool
	}{{"prometheus", false}, {"fleetpulse", true}} {
		b.Run(path.name, func(b *testing.B) {
			h := newTestHandler(openStore(b, time.Hour, nil), path.fast)
			if a := post(h, body(0), header); a.code != http.StatusNoContent {
				b.Fatalf("creating the series: %d %s", a.code, a.body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				req := body(i + 1)
				b.StartTimer()
				if a := post(h, req, header); a.code != http.StatusNoContent {
					b.Fatalf("%d %s", a.code, a.body)
				}
			}
			if path.fast && served(h) != int64(b.N)+1 {
				b.Fatalf("the hub's own path answered %d of %d requests", served(h), b.N+1)
			}
			b.ReportMetric(float64(b.N*series)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
