package ingest

import (
	"net/http"
	"testing"
	"time"

	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// BenchmarkRW2 is BenchmarkRW1 for remote write 2.0, as the agent sends
// it: the same 1,000 existing series of 8 labels, one sample each, with
// metadata (type and help) on every series; "prometheus" is Prometheus's
// handler (the path before rw2.go), "fleetpulse" is rw2.go. Building each
// iteration's request is not timed.
func BenchmarkRW2(b *testing.B) {
	lbls := benchSeries()
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	body := func(step int) []byte {
		st := writev2.NewSymbolTable()
		req := writev2.Request{Timeseries: make([]writev2.TimeSeries, len(lbls))}
		for i, l := range lbls {
			ts := &req.Timeseries[i]
			for _, l := range l {
				ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l.Name), st.Symbolize(l.Value))
			}
			ts.Samples = []writev2.Sample{{Timestamp: t0 + int64(step)*10, Value: float64(step + i)}}
			ts.Metadata = writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("A Kubernetes metric.")}
		}
		req.Symbols = st.Symbols()
		return rw2Marshal(b, &req)
	}
	for _, path := range []struct {
		name string
		fast bool
	}{{"prometheus", false}, {"fleetpulse", true}} {
		b.Run(path.name, func(b *testing.B) {
			h := newTestHandler(openStore(b, time.Hour, nil), path.fast)
			if a := post(h, body(0), rw2Header); a.code != http.StatusNoContent {
				b.Fatalf("creating the series: %d %s", a.code, a.body)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				req := body(i + 1)
				b.StartTimer()
				if a := post(h, req, rw2Header); a.code != http.StatusNoContent {
					b.Fatalf("%d %s", a.code, a.body)
				}
			}
			if path.fast && h.rw2Served.Load() != int64(b.N)+1 {
				b.Fatalf("rw2.go answered %d of %d requests", h.rw2Served.Load(), b.N+1)
			}
			b.ReportMetric(float64(b.N*len(lbls))/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
