package ingest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/promql"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// hubUnderTest is a real handler over a real store, served over mutual TLS.
type hubUnderTest struct {
	store  *metricstore.Store
	dir    string
	reg    *prometheus.Registry
	url    string
	client func(cluster string) *http.Client
}

// startHandler serves NewHandler on the agents' gateway over a store in a
// temp dir, with limits (nil: the defaults) and a 64 KiB request bound.
func startHandler(t *testing.T, cfg *limits.Config) *hubUnderTest {
	t.Helper()
	scfg := metricstore.DefaultConfig()
	scfg.Dir = t.TempDir()
	reg := prometheus.NewRegistry()
	store, err := metricstore.Open(scfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	lim, err := limits.New(limits.Options{Registerer: reg, HeadSeries: store.HeadSeries})
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		lim.Apply(*cfg)
	}
	// The request rate is the gateway's to apply, with the same limits.
	gw := gateway.New(gateway.Options{Limits: lim, Registerer: prometheus.NewRegistry()})
	gw.Handle("/api/v1/write", NewHandler(store, Options{MaxRequestBytes: 64 << 10, Registerer: reg, Limits: lim}), gateway.RateLimited())
	srv := gatewaytest.Start(t, gw)
	return &hubUnderTest{store: store, dir: scfg.Dir, reg: reg, url: srv.URL + "/api/v1/write", client: srv.Client}
}

// write posts a remote-write body (io.Reader bodies are sent chunked) and
// returns the status and message.
func (h *hubUnderTest) write(t *testing.T, cluster string, body any, header map[string]string) (int, string) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case []byte:
		r = bytes.NewReader(b)
	case io.Reader:
		r = b
	}
	req, err := http.NewRequest(http.MethodPost, h.url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.client(cluster).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// query answers an instant PromQL query at ts.
func (h *hubUnderTest) query(t *testing.T, q string, ts time.Time) string {
	t.Helper()
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	qry, err := engine.NewInstantQuery(context.Background(), h.store.Queryable(), nil, q, ts)
	if err != nil {
		t.Fatal(err)
	}
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res.Value.String()
}

func (h *hubUnderTest) limited(cluster, limit string) float64 {
	n := 0.0
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "fleetpulse_hub_ingest_limited_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			lbls := map[string]string{}
			for _, l := range m.GetLabel() {
				lbls[l.GetName()] = l.GetValue()
			}
			if lbls["cluster"] == cluster && lbls["limit"] == limit {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func walBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && strings.Contains(path, string(filepath.Separator)+"wal"+string(filepath.Separator)) {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// liveHeap is the heap's live bytes after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestAmplificationIsRefused: the remote-write 2.0 request that took a hub
// from 108 MB to 2.4 GB (one 1 MiB symbol, the value of a label of 500
// series, 53 KB on the wire), through the hub's own path and, with an
// exemplar, through Prometheus's, is refused naming the limit; nothing is
// stored (no series, no WAL growth) and the live heap does not grow. Not
// parallel: it measures the heap.
func TestAmplificationIsRefused(t *testing.T) {
	hub := startHandler(t, nil)
	now := time.Now()
	big := strings.Repeat("x", 1<<20)
	attack := func(exemplar bool) []byte {
		var series []v2TS
		for i := range 500 {
			s := v2series([]writev2.Sample{{Value: 1, Timestamp: now.UnixMilli()}}, "__name__", "amplified", "big", big, "i", fmt.Sprint(i))
			if exemplar {
				s = s.with(func(st *writev2.SymbolsTable, ts *writev2.TimeSeries) {
					ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("1")}, Value: 1, Timestamp: now.UnixMilli()}}
				})
			}
			series = append(series, s)
		}
		return rw2Body(t, series...)
	}
	// A first write opens the shard's WAL and head.
	if code, msg := hub.write(t, "cluster-a", rw2Body(t, v2series([]writev2.Sample{{Value: 1, Timestamp: now.UnixMilli()}}, "__name__", "up")), rw2Header); code != http.StatusNoContent {
		t.Fatalf("first write: %d %s", code, msg)
	}
	wal0, heap0 := walBytes(t, hub.dir), liveHeap()
	for _, exemplar := range []bool{false, true} {
		body := attack(exemplar)
		if len(body) > 64<<10 {
			t.Fatalf("the attack is %d bytes, not the small request it was", len(body))
		}
		for range 5 {
			code, msg := hub.write(t, "cluster-a", body, rw2Header)
			if code != http.StatusBadRequest || !strings.Contains(msg, "value of 1048576 bytes for label \"big\", over the label_value_length limit of 2048") {
				t.Fatalf("exemplar %v: %d %q, want 400 naming label_value_length and its value", exemplar, code, msg)
			}
			if len(msg) > 1024 {
				t.Errorf("the refusal is %d bytes: it echoes the request", len(msg))
			}
		}
	}
	heap1 := liveHeap()
	t.Logf("live heap %d KiB before the 10 refused requests, %d KiB after", heap0>>10, heap1>>10)
	if grew := int64(heap1) - int64(heap0); grew > 4<<20 {
		t.Errorf("the live heap grew by %d KiB over 10 refused requests", grew>>10)
	}
	if grew := walBytes(t, hub.dir) - wal0; grew > 0 {
		t.Errorf("the WAL grew by %d bytes", grew)
	}
	if n, err := hub.store.HeadSeries(context.Background(), "cluster-a"); err != nil || n != 1 {
		t.Errorf("cluster-a has %d head series (%v), want only up", n, err)
	}
	if got := hub.limited("cluster-a", limits.LabelValueLength); got != 10 {
		t.Errorf("limited_total{limit=label_value_length} = %v, want 10", got)
	}
}

// TestEachLimitIsRefusedAndCounted: each limit, set low for cluster-a in
// the limits file's clusters section, refuses a request over it with its
// status and a message naming it and its value, stores nothing of it, and
// is counted; cluster-b, on the defaults, is not refused the same
// requests.
func TestEachLimitIsRefusedAndCounted(t *testing.T) {
	t.Parallel()
	cfg, err := limits.Parse([]byte(`
clusters:
  cluster-a:
    label_name_length: 16
    label_value_length: 32
    labels_per_series: 4
    series_per_request: 8
    samples_per_request: 10
    decompressed_bytes: 4096
    head_series: 10
  cluster-r:
    request_rate: 0.001
    request_burst: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	hub := startHandler(t, &cfg)
	now := time.Now()
	at := func(ts time.Time) []prompb.Sample { return []prompb.Sample{{Value: 1, Timestamp: ts.UnixMilli()}} }
	many := func(prefix string, n, samples int) []prompb.TimeSeries {
		var out []prompb.TimeSeries
		for i := range n {
			ss := make([]prompb.Sample, samples)
			for j := range ss {
				ss[j] = prompb.Sample{Value: 1, Timestamp: now.Add(time.Duration(j-samples) * time.Second).UnixMilli()}
			}
			out = append(out, series(prefix, ss, "i", fmt.Sprint(i)))
		}
		return out
	}
	exemplar := func(ts prompb.TimeSeries) prompb.TimeSeries {
		ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "1"}}, Value: 1, Timestamp: now.UnixMilli()}}
		return ts
	}
	for _, tc := range []struct {
		name, limit string
		body        []byte
		header      map[string]string
		code        int
		msg         string
	}{
		{"label name", limits.LabelNameLength, rw1Body(t, series("m1", at(now), "a_label_name_of_29_bytes_long", "v")), nil,
			400, `has a label name of 29 bytes ("a_label_name_of_29_bytes_long"), over the label_name_length limit of 16 of cluster "cluster-a"`},
		{"label value", limits.LabelValueLength, rw1Body(t, series("m2", at(now), "pod", strings.Repeat("p", 40))), nil,
			400, `a series of metric "m2" has a value of 40 bytes for label "pod", over the label_value_length limit of 32`},
		{"label value, remote write 2.0", limits.LabelValueLength, rw2Body(t, v2series([]writev2.Sample{{Value: 1, Timestamp: now.UnixMilli()}}, "__name__", "m3", "pod", strings.Repeat("p", 40))), rw2Header,
			400, "over the label_value_length limit of 32"},
		{"labels", limits.LabelsPerSeries, rw1Body(t, series("m4", at(now), "a", "1", "b", "2", "c", "3", "d", "4")), nil,
			400, `a series of metric "m4" has 5 labels, over the labels_per_series limit of 4`},
		{"labels, Prometheus's path (an exemplar)", limits.LabelsPerSeries, rw1Body(t, exemplar(series("m5", at(now), "a", "1", "b", "2", "c", "3", "d", "4"))), nil,
			400, "has 5 labels, over the labels_per_series limit of 4"},
		{"series", limits.SeriesPerRequest, rw1Body(t, many("m6", 9, 1)...), nil,
			413, "the request has 9 series, over the series_per_request limit of 8"},
		{"samples", limits.SamplesPerRequest, rw1Body(t, many("m7", 2, 6)...), nil,
			413, "the request has 12 samples, exemplars and histograms, over the samples_per_request limit of 10"},
		{"decompressed", limits.DecompressedBytes, rw1Body(t, series("m8", at(now), "pod", strings.Repeat("p", 30), "x", strings.Repeat("q", 5000))), nil,
			413, "over the decompressed_bytes limit of 4096"},
	} {
		code, msg := hub.write(t, "cluster-a", tc.body, tc.header)
		if code != tc.code || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, code, msg, tc.code, tc.msg)
		}
		if got := hub.limited("cluster-a", tc.limit); got < 1 {
			t.Errorf("%s: limited_total{cluster-a,%s} = %v", tc.name, tc.limit, got)
		}
		if tc.limit != limits.DecompressedBytes {
			if code, msg := hub.write(t, "cluster-b", tc.body, tc.header); code != http.StatusNoContent {
				t.Errorf("%s: cluster-b, on the defaults: %d %q", tc.name, code, msg)
			}
		}
	}
	if got := hub.query(t, `count({cluster="cluster-a"})`, now); got != "" {
		t.Errorf("cluster-a stored series of refused requests: %s", got)
	}

	// Head series: 8 new series fit a limit of 10, 3 more do not (429,
	// nothing stored), writing to the 8 goes on.
	if code, msg := hub.write(t, "cluster-a", rw1Body(t, many("h", 8, 1)...), nil); code != http.StatusNoContent {
		t.Fatalf("8 series: %d %q", code, msg)
	}
	code, msg := hub.write(t, "cluster-a", rw1Body(t, append(many("h", 8, 1)[:5], many("more", 3, 1)...)...), nil)
	if code != http.StatusTooManyRequests || !strings.Contains(msg, "the request would add 3 series to the 8 in the head, over the head_series limit of 10") {
		t.Errorf("3 series more: %d %q, want 429 naming head_series and its value", code, msg)
	}
	if got := hub.query(t, `count(more)`, now); got != "" {
		t.Errorf("stored series of a request refused for head series: %s", got)
	}
	later := now.Add(time.Second)
	var again []prompb.TimeSeries
	for _, ts := range many("h", 8, 1) {
		ts.Samples[0].Timestamp = later.UnixMilli()
		again = append(again, ts)
	}
	if code, msg := hub.write(t, "cluster-a", rw1Body(t, again...), nil); code != http.StatusNoContent {
		t.Errorf("existing series at the limit: %d %q", code, msg)
	}
	if got := hub.limited("cluster-a", limits.HeadSeries); got != 1 {
		t.Errorf("limited_total{head_series} = %v", got)
	}

	// Request rate: a burst of 2, then 429 with Retry-After.
	for i := range 3 {
		code, msg := hub.write(t, "cluster-r", rw1Body(t, series("r", at(now.Add(time.Duration(i)*time.Second)))), nil)
		want := map[bool]int{true: http.StatusNoContent, false: http.StatusTooManyRequests}[i < 2]
		if code != want || (i == 2 && !strings.Contains(msg, "over the request_rate limit of 0.001")) {
			t.Errorf("request %d: %d %q, want %d", i, code, msg, want)
		}
	}
	if got := hub.limited("cluster-r", limits.RequestRate); got != 1 {
		t.Errorf("limited_total{cluster-r,request_rate} = %v", got)
	}
}

// TestRefusalsOfTheWire: 415 for another media type whatever the body,
// 413 for a chunked body past the bound.
func TestRefusalsOfTheWire(t *testing.T) {
	t.Parallel()
	hub := startHandler(t, nil)
	if code, msg := hub.write(t, "cluster-a", []byte("{\"not\": \"remote write\"}"), map[string]string{"Content-Type": "application/json"}); code != http.StatusUnsupportedMediaType || !strings.Contains(msg, "application/json") {
		t.Errorf("JSON: %d %q, want 415 naming the media type", code, msg)
	}
	if code, msg := hub.write(t, "cluster-a", []byte("x"), map[string]string{"Content-Encoding": "gzip"}); code != http.StatusUnsupportedMediaType || !strings.Contains(msg, "gzip") {
		t.Errorf("gzip: %d %q, want 415 naming the encoding", code, msg)
	}
	chunked := io.MultiReader(bytes.NewReader(make([]byte, 40<<10)), bytes.NewReader(make([]byte, 40<<10)))
	if code, msg := hub.write(t, "cluster-a", chunked, nil); code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "over the request_bytes limit of 65536") {
		t.Errorf("chunked 80 KiB: %d %q, want 413 naming request_bytes", code, msg)
	}
	if got := hub.limited("cluster-a", limits.RequestBytes); got != 1 {
		t.Errorf("limited_total{request_bytes} = %v", got)
	}
}

// TestPartlyBadRW1BatchKeepsItsGoodSamples: a remote-write 1.0 batch with
// one too-old sample is answered 400 naming it, and its other samples,
// through the hub's own path and through Prometheus's (an exemplar), are
// stored.
func TestPartlyBadRW1BatchKeepsItsGoodSamples(t *testing.T) {
	t.Parallel()
	hub := startHandler(t, nil)
	now := time.Now().Truncate(time.Second)
	at := func(ts time.Time, v float64) []prompb.Sample {
		return []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}
	}
	withExemplar := func(ts prompb.TimeSeries) prompb.TimeSeries {
		ts.Exemplars = []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "1"}}, Value: 1, Timestamp: now.UnixMilli()}}
		return ts
	}
	if code, msg := hub.write(t, "cluster-a", rw1Body(t, series("up", at(now, 1), "job", "old")), nil); code != http.StatusNoContent {
		t.Fatalf("%d %q", code, msg)
	}
	for _, path := range []struct {
		name string
		ex   func(prompb.TimeSeries) prompb.TimeSeries
	}{{"own", func(ts prompb.TimeSeries) prompb.TimeSeries { return ts }}, {"prometheus", withExemplar}} {
		code, msg := hub.write(t, "cluster-a", rw1Body(t,
			series("good_"+path.name, at(now, 7), "job", "a"),
			series("up", at(now.Add(-3*time.Hour), 1), "job", "old"),
			path.ex(series("good_"+path.name, at(now, 8), "job", "b")),
		), nil)
		if code != http.StatusBadRequest || !strings.Contains(msg, `too old sample for series {__name__="up", cluster="cluster-a", job="old"}`) {
			t.Errorf("%s path: %d %q, want 400 naming the too-old sample", path.name, code, msg)
		}
		if got, want := hub.query(t, `good_`+path.name, now), fmt.Sprintf(`{__name__="good_%[1]s", cluster="cluster-a", job="a"} => 7 @[%[2]d]
{__name__="good_%[1]s", cluster="cluster-a", job="b"} => 8 @[%[2]d]`, path.name, now.UnixMilli()); got != want {
			t.Errorf("%s path: stored\n%s\nwant\n%s", path.name, got, want)
		}
	}
}
