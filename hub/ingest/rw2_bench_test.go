package ingest

import (
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
	benchPaths(b, body, rw2Header, len(lbls), func(h *handler) int64 { return h.rw2Served.Load() })
}
