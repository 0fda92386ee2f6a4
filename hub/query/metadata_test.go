package query_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// TestRemoteWrittenMetadataAndExemplarsServed remote-writes metadata
// (1.0's list, 2.0's per series) and exemplars (2.0) for two clusters
// through the ingest handler into a real store, and reads them back with
// Prometheus's API client, as Grafana reads them: the metadata merged over
// the clusters (a family two clusters describe apart has both), the
// exemplars with their series labelled by cluster.
func TestRemoteWrittenMetadataAndExemplarsServed(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	at := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ms := at.UnixMilli()

	h.write(t, "east", false, rw1(t, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "http_requests_total"}, {Name: "job", Value: "api"}},
			Samples: []prompb.Sample{{Timestamp: ms, Value: 3}},
		}},
		Metadata: []prompb.MetricMetadata{
			{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "http_requests_total", Help: "Requests served.", Unit: "requests"},
			{Type: prompb.MetricMetadata_GAUGE, MetricFamilyName: "node_memory_free_bytes", Help: "Free memory.", Unit: "bytes"},
		},
	}))
	// Metadata alone, as Prometheus sends it every minute.
	h.write(t, "east", false, rw1(t, &prompb.WriteRequest{Metadata: []prompb.MetricMetadata{
		{Type: prompb.MetricMetadata_INFO, MetricFamilyName: "build_info", Help: "Build."},
	}}))
	// The hub's own 2.0 path (no exemplars), then Prometheus's (exemplars).
	h.write(t, "west", true, rw2(t,
		rw2Series{labels: []string{"__name__", "http_requests_total", "job", "api"}, value: 5, ts: ms,
			typ: writev2.Metadata_METRIC_TYPE_COUNTER, help: "Requests, all of them."},
		rw2Series{labels: []string{"__name__", "queue_length"}, value: 1, ts: ms},
	))
	h.write(t, "west", true, rw2(t, rw2Series{
		labels: []string{"__name__", "request_duration_seconds_bucket", "le", "0.5", "job", "api"}, value: 7, ts: ms,
		typ: writev2.Metadata_METRIC_TYPE_HISTOGRAM, help: "Request latency.", unit: "seconds",
		exemplarTraceIDs: []string{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"},
	}))

	client, err := api.NewClient(api.Config{Address: h.api.URL})
	if err != nil {
		t.Fatal(err)
	}
	prom := v1.NewAPI(client)
	ctx := context.Background()

	got, err := prom.Metadata(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]v1.Metadata{
		"http_requests_total": {
			{Type: v1.MetricTypeCounter, Help: "Requests, all of them."}, // by type, unit and help
			{Type: v1.MetricTypeCounter, Help: "Requests served.", Unit: "requests"},
		},
		"node_memory_free_bytes":          {{Type: v1.MetricTypeGauge, Help: "Free memory.", Unit: "bytes"}},
		"build_info":                      {{Type: v1.MetricTypeInfo, Help: "Build."}},
		"request_duration_seconds_bucket": {{Type: v1.MetricTypeHistogram, Help: "Request latency.", Unit: "seconds"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("metadata:\n%v\nwant\n%v", got, want)
	}
	for _, tc := range []struct {
		query url.Values
		want  int // families
		per   int // metadata of http_requests_total, if served
	}{
		{query: url.Values{"metric": {"http_requests_total"}}, want: 1, per: 2},
		{query: url.Values{"metric": {"http_requests_total"}, "limit_per_metric": {"1"}}, want: 1, per: 1},
		{query: url.Values{"limit": {"2"}}, want: 2},
		{query: url.Values{"metric": {"nothing_of_that_name"}}, want: 0},
	} {
		a := h.call(t, http.MethodGet, "/metadata", tc.query, nil, nil)
		var data map[string][]v1.Metadata
		if err := json.Unmarshal(a.Data, &data); err != nil || a.code != 200 {
			t.Fatalf("metadata?%s: %d %s", tc.query.Encode(), a.code, a.body)
		}
		if len(data) != tc.want || tc.per > 0 && len(data["http_requests_total"]) != tc.per {
			t.Errorf("metadata?%s = %s, want %d families (%d metadata of http_requests_total)", tc.query.Encode(), a.Data, tc.want, tc.per)
		}
	}

	ex, err := prom.QueryExemplars(ctx, `request_duration_seconds_bucket{job="api"}`, at.Add(-time.Minute), at.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	wantEx := []v1.ExemplarQueryResult{{
		SeriesLabels: model.LabelSet{"__name__": "request_duration_seconds_bucket", "cluster": "west", "job": "api", "le": "0.5"},
		Exemplars: []v1.Exemplar{
			{Labels: model.LabelSet{"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736"}, Value: 0, Timestamp: model.TimeFromUnixNano(at.UnixNano())},
			{Labels: model.LabelSet{"trace_id": "00f067aa0ba902b7"}, Value: 1, Timestamp: model.TimeFromUnixNano(at.UnixNano())},
		},
	}}
	if !reflect.DeepEqual(ex, wantEx) {
		t.Errorf("exemplars:\n%v\nwant\n%v", ex, wantEx)
	}
	// Another cluster's series has none.
	if ex, err := prom.QueryExemplars(ctx, `http_requests_total`, at.Add(-time.Minute), at.Add(time.Minute)); err != nil || len(ex) != 0 {
		t.Errorf("exemplars of a series sent without: %v, %v", ex, err)
	}
}
