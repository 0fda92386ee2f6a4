package ingest

import (
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promMetadata "github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// TestMetadataTakesEveryPath writes metric metadata the ways writers send
// it (remote write 1.0's list, with samples and alone; 2.0's per series),
// through the hub's own paths (rw1.go, rw2.go) and through Prometheus's
// handler (requests with exemplars): the store keeps the same metadata for
// the cluster either way, and the hub's paths answered what they take.
func TestMetadataTakesEveryPath(t *testing.T) {
	t.Parallel()
	now := time.Now().Add(-time.Minute).UnixMilli()
	sample := []prompb.Sample{{Timestamp: now, Value: 1}}
	withExemplar := func(ts prompb.TimeSeries) prompb.TimeSeries {
		ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "t1"}}, Value: 1, Timestamp: now}}
		return ts
	}
	rw1 := func(ts []prompb.TimeSeries, md ...prompb.MetricMetadata) []byte {
		return rw1Marshal(t, &prompb.WriteRequest{Timeseries: ts, Metadata: md})
	}
	v2at := []writev2.Sample{{Timestamp: now, Value: 1}}
	v2exemplar := func(st *writev2.SymbolsTable, ts *writev2.TimeSeries) {
		ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("t2")}, Value: 1, Timestamp: now}}
	}
	requests := []struct {
		name   string
		body   []byte
		header map[string]string
	}{
		{"1.0 samples and metadata", rw1([]prompb.TimeSeries{series("rw1_requests_total", sample, "job", "a")},
			prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "rw1_requests_total", Help: "Requests.", Unit: "requests"}), nil},
		{"1.0 metadata alone, as Prometheus sends it", rw1(nil,
			prompb.MetricMetadata{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "rw1_alone", Help: "Alone."},
			prompb.MetricMetadata{Type: prompb.MetricMetadata_UNKNOWN, MetricFamilyName: "rw1_nothing"}), nil},
		{"2.0 metadata per series", rw2Body(t,
			v2series(v2at, "__name__", "rw2_seconds_bucket", "le", "1").with(withMetadata(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Latency.", "seconds")),
			v2series(v2at, "__name__", "rw2_seconds_bucket", "le", "+Inf").with(withMetadata(writev2.Metadata_METRIC_TYPE_HISTOGRAM, "Latency.", "seconds")),
			v2series(v2at, "__name__", "rw2_no_metadata"),
		), rw2Header},
		{"1.0 with an exemplar (Prometheus's path)", rw1([]prompb.TimeSeries{withExemplar(series("rw1_exemplar_total", sample, "job", "a"))},
			prompb.MetricMetadata{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "rw1_exemplar_total", Help: "With an exemplar."}), nil},
		{"2.0 with an exemplar (Prometheus's path)", rw2Body(t,
			v2series(v2at, "__name__", "rw2_exemplar_total").with(withMetadata(writev2.Metadata_METRIC_TYPE_COUNTER, "With an exemplar.", "")).with(v2exemplar),
		), rw2Header},
	}
	want := []metadata.Family{
		{Name: "rw1_alone", Metadata: promMetadata.Metadata{Type: model.MetricTypeGauge, Help: "Alone."}},
		{Name: "rw1_exemplar_total", Metadata: promMetadata.Metadata{Type: model.MetricTypeCounter, Help: "With an exemplar."}},
		{Name: "rw1_requests_total", Metadata: promMetadata.Metadata{Type: model.MetricTypeCounter, Help: "Requests.", Unit: "requests"}},
		{Name: "rw2_exemplar_total", Metadata: promMetadata.Metadata{Type: model.MetricTypeCounter, Help: "With an exemplar."}},
		{Name: "rw2_seconds_bucket", Metadata: promMetadata.Metadata{Type: model.MetricTypeHistogram, Help: "Latency.", Unit: "seconds"}},
	}
	md, err := metadata.New(metadata.DefaultLimits(), nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := metricstore.DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 1
	store, err := metricstore.Open(cfg, nil, nil, metricstore.WithMetadata(md))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	h := newTestHandler(store, true)
	for _, r := range requests {
		if a := post(h, r.body, r.header); a.code != http.StatusNoContent {
			t.Fatalf("%s: %d %s", r.name, a.code, a.body)
		}
	}
	if got := md.Cluster(testCluster); !reflect.DeepEqual(got, want) {
		t.Errorf("metadata kept:\n%v\nwant\n%v", got, want)
	}
	if h.rw1Served.Load() != 2 || h.rw2Served.Load() != 1 {
		t.Errorf("rw1.go answered %d requests, rw2.go %d; want 2 and 1", h.rw1Served.Load(), h.rw2Served.Load())
	}
}
