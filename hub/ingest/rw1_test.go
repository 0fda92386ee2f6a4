package ingest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	thanosprompb "github.com/thanos-io/thanos/pkg/store/storepb/prompb"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// dump is everything the store holds, one line per series.
func dump(t testing.TB, store *metricstore.Store) string {
	t.Helper()
	return dumpMatching(t, store)
}

// dumpMatching is dump of the series that match ms too.
func dumpMatching(t testing.TB, store *metricstore.Store, ms ...*labels.Matcher) string {
	t.Helper()
	q, err := store.Queryable().Querier(math.MinInt64/2, math.MaxInt64/2)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), true, nil, append(ms, labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+"))...)
	var out strings.Builder
	for ss.Next() {
		s := ss.At()
		fmt.Fprintf(&out, "%s", s.Labels())
		it := s.Iterator(nil)
		for vt := it.Next(); vt != chunkenc.ValNone; vt = it.Next() {
			switch vt {
			case chunkenc.ValFloat:
				ts, v := it.At()
				fmt.Fprintf(&out, " %d=%v", ts, math.Float64bits(v))
			default:
				ts := it.AtT()
				fmt.Fprintf(&out, " %d=histogram", ts)
			}
		}
		out.WriteByte('\n')
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestRW1AnswersAsPrometheus sends the same requests, in the same order, to
// the handler with and without rw1.go, each over a store of its own, and
// requires the same answers (status, message, headers) and, in the end, the
// same stored series and samples; and that rw1.go answered the requests it
// is meant to, so that the comparison is not between two Prometheus
// handlers. With a 1 h out-of-order window (the hub's default) an old
// sample is "too old"; without one it is "out of bounds" or "out of order".
func TestRW1AnswersAsPrometheus(t *testing.T) {
	t.Parallel()
	for _, ooo := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprintf("out-of-order window %s", ooo), func(t *testing.T) {
			t.Parallel()
			testRW1AnswersAsPrometheus(t, ooo)
		})
	}
}

func testRW1AnswersAsPrometheus(t *testing.T, ooo time.Duration) {
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second).UnixMilli()
	at := func(ms int64, v float64) []prompb.Sample { return []prompb.Sample{{Timestamp: t0 + ms, Value: v}} }
	two := func(ms int64, v float64) []prompb.Sample {
		return []prompb.Sample{{Timestamp: t0 + ms, Value: v}, {Timestamp: t0 + ms + 1000, Value: v + 1}}
	}
	v2 := func() []byte {
		syms := writev2.NewSymbolTable()
		refs := []uint32{syms.Symbolize("__name__"), syms.Symbolize("rw2_metric"), syms.Symbolize("job"), syms.Symbolize("x")}
		b, err := (&writev2.Request{Symbols: syms.Symbols(), Timeseries: []writev2.TimeSeries{{
			LabelsRefs: refs, Samples: []writev2.Sample{{Timestamp: t0, Value: 1}},
		}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return snappy.Encode(nil, b)
	}()
	hist := prompb.FromIntHistogram(t0, &histogram1)
	v2Header := map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}

	cases := []answerCase{
		{"new series, one claiming another cluster, one unsorted", rw1Body(t,
			series("up", two(0, 1), "job", "a"),
			series("up", two(0, 5), "cluster", "cluster-b", "job", "b"),
			prompb.TimeSeries{Labels: []prompb.Label{{Name: "zone", Value: "z1"}, {Name: "__name__", Value: "up"}, {Name: "job", Value: "c"}}, Samples: two(0, 7)},
		), nil, http.StatusNoContent, "", true},
		{"existing and new series", rw1Body(t,
			series("up", at(2000, 2), "job", "a"),
			series("up", at(2000, 6), "cluster", "cluster-b", "job", "b"),
			series("up", at(2000, 8), "job", "c", "zone", "z1"),
			series("new_metric", two(2000, 1), "job", "d"),
		), nil, http.StatusNoContent, "", true},
		{"a sample too old or out of order is refused, the rest kept", rw1Body(t,
			series("up", at(3000, 3), "job", "b"),
			series("up", at(-2*time.Hour.Milliseconds(), 3), "job", "c", "zone", "z1"),
			series("kept_beside_bad", at(3000, 1), "job", "e"),
		), nil, http.StatusBadRequest, map[bool]string{true: "too old sample", false: "out of bounds"}[ooo > 0] +
			` for series {__name__="up", cluster="cluster-a", job="c", zone="z1"}`, true},
		{"duplicate sample", rw1Body(t, series("up", at(2000, 99), "job", "a")), nil, http.StatusBadRequest, "duplicate sample for timestamp", true},
		{"the same sample again", rw1Body(t, series("up", at(2000, 2), "job", "a")), nil, http.StatusNoContent, "", true},
		{"too far ahead", rw1Body(t, series("up", []prompb.Sample{{Timestamp: time.Now().Add(time.Hour).UnixMilli(), Value: 1}}, "job", "a")),
			nil, http.StatusBadRequest, "out of bounds: timestamp is too far in the future", true},
		{"within the out-of-order window", rw1Body(t, series("up", at(1500, 1.5), "job", "a")),
			nil, map[bool]int{true: http.StatusNoContent, false: http.StatusBadRequest}[ooo > 0], map[bool]string{true: "", false: "out of order sample"}[ooo > 0], true},
		{"stale marker, empty label value, series without samples", rw1Body(t,
			series("up", []prompb.Sample{{Timestamp: t0 + 4000, Value: math.Float64frombits(value.StaleNaN)}}, "job", "a"),
			series("with_empty", at(4000, 1), "empty", "", "job", "f"),
			series("no_samples", nil, "job", "g"),
		), nil, http.StatusNoContent, "", true},
		{"two series, the same once the cluster label is gone", rw1Body(t,
			series("twin", at(5000, 1), "cluster", "x", "job", "h"),
			series("twin", at(5000, 2), "job", "h"),
		), nil, http.StatusNoContent, "", true},
		{"empty request", rw1Body(t), nil, http.StatusNoContent, "", true},
		{"no metric name", rw1Body(t, series("", at(6000, 1), "job", "i"), series("named", at(6000, 1), "job", "i")), nil, http.StatusNoContent, "", false},
		{"duplicate label names", rw1Body(t, series("dup", at(6000, 1), "job", "j", "job", "k"), series("named", at(7000, 1), "job", "i")), nil, http.StatusNoContent, "", false},
		{"invalid UTF-8", rw1Body(t, series("utf", at(6000, 1), "job", "\xff"), series("named", at(8000, 1), "job", "i")), nil, http.StatusNoContent, "", false},
		{"exemplar", rw1Body(t, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "with_exemplar"}}, Samples: at(6000, 1),
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "abc"}}, Value: 1, Timestamp: t0 + 6000}},
		}), nil, http.StatusNoContent, "", false},
		{"native histogram", rw1Body(t, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "with_histogram"}}, Histograms: []prompb.Histogram{hist},
		}), nil, http.StatusNoContent, "", false},
		{"not snappy", []byte("definitely not a remote-write request"), nil, http.StatusBadRequest, "", false},
		{"not protobuf", snappy.Encode(nil, []byte("\xff\xff\xff not protobuf")), nil, http.StatusBadRequest, "", false},
		{"remote write 2.0", v2, v2Header, http.StatusNoContent, "", false},
		{"other media type", rw1Body(t), map[string]string{"Content-Type": "text/plain"}, http.StatusUnsupportedMediaType, "", false},
		{"other encoding", rw1Body(t), map[string]string{"Content-Encoding": "gzip"}, http.StatusUnsupportedMediaType, "", false},
		{"no media type or encoding", rw1Body(t, series("up", at(9000, 9), "job", "a")),
			map[string]string{"Content-Type": "", "Content-Encoding": ""}, http.StatusNoContent, "", true},
	}

	got := compareAnswers(t, ooo, cases, "rw1.go", func(h *handler) int64 { return h.rw1Served.Load() })
	if strings.Contains(got, `cluster="cluster-b"`) {
		t.Errorf("stored cluster-b's series:\n%s", got)
	}
	if !strings.Contains(got, `{__name__="kept_beside_bad", cluster="cluster-a", job="e"}`) {
		t.Errorf("the good samples of a request with a bad one are not stored:\n%s", got)
	}
	if !strings.Contains(got, `{__name__="up", cluster="cluster-a", job="b"}`) {
		t.Errorf("the series that claimed cluster-b is not stored as cluster-a's:\n%s", got)
	}
}

// histogram1 is a small native histogram.
var histogram1 = histogram.Histogram{
	Count: 3, Sum: 4.5, Schema: 0, ZeroThreshold: 0.001, ZeroCount: 1,
	PositiveSpans: []histogram.Span{{Offset: 0, Length: 2}}, PositiveBuckets: []int64{1, 0},
}

func headersEqual(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestRW1LabelsDoNotPointIntoTheRequest decodes requests as rw1.go does,
// appends them, then overwrites the decoded bytes: the stored series must
// be intact, both those created by the request and those it appended to
// (and, with the bytes garbage, a second write to the same series must
// find them).
func TestRW1LabelsDoNotPointIntoTheRequest(t *testing.T) {
	t.Parallel()
	store := openStore(t, time.Hour, nil)
	h := newTestHandler(store, true)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	write := func(step int64) {
		raw := rw1Proto(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			series("kept", []prompb.Sample{{Timestamp: t0 + step, Value: 1}}, "cluster", "other", "job", "a", "pod", "p-1"),
			series("kept", []prompb.Sample{{Timestamp: t0 + step, Value: 2}}, "job", "a", "pod", "p-2"),
		}})
		var req thanosprompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			t.Fatal(err)
		}
		app, err := store.Appender(context.Background(), testCluster)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := app.(storage.GetRef); !ok {
			t.Fatalf("the store's appender %T cannot look series up: every series' labels would be copied", app)
		}
		refs := make([]resolved, len(req.Timeseries))
		if !prepareSeries(req.Timeseries, testCluster, refsOf(app), refs, make([]bool, len(refs))) {
			t.Fatal("rw1.go refused the request")
		}
		if err := h.appendSeries(app, req.Timeseries, refs); err != nil {
			t.Fatal(err)
		}
		for i := range raw {
			raw[i] = '#'
		}
	}
	write(0)
	write(1000)
	checkKept(t, store, t0)
}

// TestRefusedRequestsCloseTheirAppender: every refusal after the shard's
// appender is opened (wrong media type or encoding, an undecodable body,
// through either path) closes it, so the head's active-appenders gauge
// returns to zero.
func TestRefusedRequestsCloseTheirAppender(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	store := openStore(t, time.Hour, reg)
	h := newTestHandler(store, true)
	now := time.Now()
	if a := post(h, writeRequest(t, now, "up", 1, "job", "a"), nil); a.code != http.StatusNoContent {
		t.Fatalf("first write: %d %s", a.code, a.body)
	}
	for _, req := range []struct {
		body   []byte
		header map[string]string
	}{
		{[]byte("not snappy"), nil},
		{snappy.Encode(nil, []byte("\xff\xff not protobuf")), nil},
		{writeRequest(t, now, "up", 1, "job", "a"), map[string]string{"Content-Type": "text/plain"}},
		{writeRequest(t, now, "up", 1, "job", "a"), map[string]string{"Content-Encoding": "gzip"}},
		{[]byte("not snappy"), map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}},
		{writeRequest(t, now.Add(-3*time.Hour), "up", 1, "job", "a"), nil},
	} {
		if a := post(h, req.body, req.header); a.code < 400 {
			t.Fatalf("%q %v: %d, want a refusal", req.body, req.header, a.code)
		}
	}
	if n := shardsGauge(t, reg, "fleetpulse_hub_prometheus_tsdb_head_active_appenders"); n != 0 {
		t.Errorf("%v appenders left open", n)
	}
}

// shardsGauge sums a per-shard gauge of the store over its shards.
func shardsGauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum, found = sum+m.GetGauge().GetValue(), true
		}
	}
	if !found {
		t.Fatalf("no %s", name)
	}
	return sum
}

// FuzzDecodeSeries: whatever decodeSeries accepts and rw1.go keeps (no
// exemplars or histograms), Prometheus's own decoding (the handler rw1.go
// stands in for) accepts too, with the same series, labels and samples;
// the rest goes to that handler. The
// seeds are a request of every kind of series, each of its prefixes and
// each of its bytes changed.
func FuzzDecodeSeries(f *testing.F) {
	valid := rw1Proto(f, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			series("up", []prompb.Sample{{Timestamp: 1, Value: 1}, {Timestamp: 2, Value: 2}}, "job", "a", "cluster", "x"),
			series("", nil),
			{Labels: []prompb.Label{{Name: "__name__", Value: "e"}}, Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "t", Value: "1"}}, Value: 1, Timestamp: 1}}},
			{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(1, &histogram1)}},
		},
		Metadata: nil,
	})
	withMetadata := rw1Proto(f, &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{series("up", []prompb.Sample{{Timestamp: 1, Value: 1}})},
		Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE}},
	})
	f.Add(withMetadata)
	for i := range valid {
		f.Add(valid[:i])
		for _, b := range []byte{0x00, 0x0a, 0x12, 0x7f, 0x80, 0xff} {
			mutated := slices.Clone(valid)
			mutated[i] = b
			f.Add(mutated)
		}
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, buf []byte) {
		got, err := decodeSeries(buf)
		if err != nil || slices.ContainsFunc(got, func(ts thanosprompb.TimeSeries) bool { return len(ts.Exemplars)+len(ts.Histograms) > 0 }) {
			return // for Prometheus's handler
		}
		var want prompb.WriteRequest
		if err := proto.Unmarshal(buf, &want); err != nil {
			t.Fatalf("decodeSeries accepts %q, which Prometheus refuses: %v", buf, err)
		}
		if len(got) != len(want.Timeseries) {
			t.Fatalf("%q: %d series, Prometheus %d", buf, len(got), len(want.Timeseries))
		}
		for i, ts := range got {
			w := want.Timeseries[i]
			same := len(ts.Labels) == len(w.Labels) && len(ts.Samples) == len(w.Samples) &&
				len(ts.Exemplars) == len(w.Exemplars) && len(ts.Histograms) == len(w.Histograms)
			for j := 0; same && j < len(ts.Labels); j++ {
				same = ts.Labels[j].Name == w.Labels[j].Name && ts.Labels[j].Value == w.Labels[j].Value
			}
			for j := 0; same && j < len(ts.Samples); j++ {
				same = ts.Samples[j].Timestamp == w.Samples[j].Timestamp && math.Float64bits(ts.Samples[j].Value) == math.Float64bits(w.Samples[j].Value)
			}
			if !same {
				t.Fatalf("%q: series %d is %v, Prometheus %v", buf, i, ts, w)
			}
		}
	})
}

// answerCase is one request of a differential test: what Prometheus's
// handler must answer (its status and part of its body), and whether the
// hub's own path answers it rather than handing it over.
type answerCase struct {
	name   string
	body   []byte
	header map[string]string
	code   int
	msg    string
	own    bool
}

// compareAnswers posts every case, in order, to the handler with its own
// paths (path names the one under test; served counts its answers) and to
// the handler without them, each over a store of its own: the answers
// (status, body, headers) must be the same, Prometheus's as the case
// expects, the path must have answered exactly the cases it owns, and both
// stores must end up holding the same. It returns what they hold.
func compareAnswers(t *testing.T, ooo time.Duration, cases []answerCase, path string, served func(*handler) int64) string {
	t.Helper()
	fastStore, promStore := openStore(t, ooo, nil), openStore(t, ooo, nil)
	fast, prom := newTestHandler(fastStore, true), newTestHandler(promStore, false)
	for _, tc := range cases {
		before := served(fast)
		got, want := post(fast, tc.body, tc.header), post(prom, tc.body, tc.header)
		if own := served(fast) > before; own != tc.own {
			t.Errorf("%s: answered by %s = %v, want %v", tc.name, path, own, tc.own)
		}
		if got.code != want.code || got.body != want.body || !headersEqual(got.header, want.header) {
			t.Errorf("%s: answer %d %q %v, Prometheus's handler %d %q %v", tc.name, got.code, got.body, got.header, want.code, want.body, want.header)
		}
		if want.code != tc.code || !strings.Contains(want.body, tc.msg) {
			t.Errorf("%s: Prometheus's handler answered %d %q, the test expects %d with %q", tc.name, want.code, want.body, tc.code, tc.msg)
		}
	}
	got, want := dump(t, fastStore), dump(t, promStore)
	if got != want {
		t.Errorf("stored through %s:\n%s\nthrough Prometheus's handler:\n%s", path, got, want)
	}
	return got
}

// checkKept requires the store to hold exactly what the zero-copy tests
// write: series "kept" of pods p-1 (value 1) and p-2 (value 2) at t0 and
// t0+1s, stamped cluster-a, their labels intact after the requests' bytes
// were overwritten.
func checkKept(t *testing.T, store *metricstore.Store, t0 int64) {
	t.Helper()
	want := fmt.Sprintf(`{__name__="kept", cluster="cluster-a", job="a", pod="p-1"} %d=%d %d=%d
{__name__="kept", cluster="cluster-a", job="a", pod="p-2"} %d=%d %d=%d
`, t0, math.Float64bits(1), t0+1000, math.Float64bits(1), t0, math.Float64bits(2), t0+1000, math.Float64bits(2))
	if got := dump(t, store); got != want {
		t.Errorf("stored:\n%s\nwant:\n%s", got, want)
	}
}
