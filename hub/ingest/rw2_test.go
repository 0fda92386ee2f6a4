package ingest

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/value"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fleetpulse/fleetpulse/hub/limits"
)

// TestRW2AnswersAsPrometheus is TestRW1AnswersAsPrometheus for remote
// write 2.0: the same requests, in the same order, to the handler with and
// without rw2.go, each over a store of its own, must get the same answers
// (status, message, headers, the written counts among them) and leave the
// same series and samples; and rw2.go must have answered the requests it
// is meant to. Unlike 1.0, 2.0 writes partially: a refused sample is left
// out, the rest written.
func TestRW2AnswersAsPrometheus(t *testing.T) {
	t.Parallel()
	for _, ooo := range []time.Duration{time.Hour, 0} {
		t.Run(fmt.Sprintf("out-of-order window %s", ooo), func(t *testing.T) {
			t.Parallel()
			testRW2AnswersAsPrometheus(t, ooo)
		})
	}
}

func testRW2AnswersAsPrometheus(t *testing.T, ooo time.Duration) {
	t0 := time.Now().Add(-10 * time.Minute).Truncate(time.Second).UnixMilli()
	old := -2 * time.Hour.Milliseconds()
	at := func(ms int64, v float64) []writev2.Sample { return []writev2.Sample{{Timestamp: t0 + ms, Value: v}} }
	two := func(ms int64, v float64) []writev2.Sample {
		return []writev2.Sample{{Timestamp: t0 + ms, Value: v}, {Timestamp: t0 + ms + 1000, Value: v + 1}}
	}
	gauge := withMetadata(writev2.Metadata_METRIC_TYPE_GAUGE, "Whether the target is up.", "")
	counter := withMetadata(writev2.Metadata_METRIC_TYPE_COUNTER, "Bytes sent.", "bytes")
	refs := func(refs ...uint32) func(*writev2.SymbolsTable, *writev2.TimeSeries) {
		return func(_ *writev2.SymbolsTable, ts *writev2.TimeSeries) { ts.LabelsRefs = refs }
	}
	tooOld := map[bool]string{true: "too old sample", false: "out of bounds"}[ooo > 0]
	hist := writev2.FromIntHistogram(t0+6000, &histogram1)

	cases := []answerCase{
		{"new series with metadata, one claiming another cluster, one unsorted", rw2Body(t,
			v2series(two(0, 1), "__name__", "up", "job", "a").with(gauge),
			v2series(two(0, 5), "__name__", "up", "cluster", "cluster-b", "job", "b").with(gauge),
			v2series(two(0, 7), "zone", "z1", "__name__", "up", "job", "c").with(gauge),
			v2series(at(0, 1e6), "__name__", "sent_bytes_total", "job", "a").with(counter),
		), rw2Header, http.StatusNoContent, "", true},
		{"existing and new series, without metadata", rw2Body(t,
			v2series(at(2000, 2), "__name__", "up", "job", "a"),
			v2series(at(2000, 6), "__name__", "up", "cluster", "cluster-b", "job", "b"),
			v2series(at(2000, 8), "__name__", "up", "job", "c", "zone", "z1"),
			v2series(two(2000, 1), "__name__", "new_metric", "job", "d"),
		), rw2Header, http.StatusNoContent, "", true},
		{"samples too old or out of order are left out, the rest written", rw2Body(t,
			v2series(at(3000, 3), "__name__", "up", "job", "a"),
			v2series(at(old, 3), "__name__", "up", "cluster", "cluster-b", "job", "b"),
			v2series(append(at(old, 3), at(3000, 3)...), "__name__", "up", "job", "c", "zone", "z1").with(gauge),
			v2series(at(3000, 1), "__name__", "partially_written", "job", "e"),
		), rw2Header, http.StatusBadRequest, tooOld, true},
		{"duplicate sample", rw2Body(t, v2series(at(3000, 99), "__name__", "up", "job", "a")), rw2Header, http.StatusBadRequest, "duplicate sample for timestamp", true},
		{"the same sample again", rw2Body(t, v2series(at(3000, 3), "__name__", "up", "job", "a")), rw2Header, http.StatusNoContent, "", true},
		{"too far ahead", rw2Body(t,
			v2series([]writev2.Sample{{Timestamp: time.Now().Add(time.Hour).UnixMilli(), Value: 1}}, "__name__", "up", "job", "a"),
			v2series([]writev2.Sample{{Timestamp: time.Now().Add(time.Hour).UnixMilli(), Value: 1}}, "__name__", "ahead_new", "job", "a"),
		), rw2Header, http.StatusBadRequest, "out of bounds: timestamp is too far in the future", true},
		{"within the out-of-order window", rw2Body(t, v2series(at(1500, 1.5), "__name__", "up", "job", "a")), rw2Header,
			map[bool]int{true: http.StatusNoContent, false: http.StatusBadRequest}[ooo > 0], map[bool]string{true: "", false: "out of order sample"}[ooo > 0], true},
		{"stale marker, empty label value, start timestamp", rw2Body(t,
			v2series([]writev2.Sample{{Timestamp: t0 + 4000, Value: math.Float64frombits(value.StaleNaN)}}, "__name__", "up", "job", "a"),
			v2series(at(4000, 1), "__name__", "with_empty", "empty", "", "job", "f"),
			v2series([]writev2.Sample{{Timestamp: t0 + 4000, Value: 1, StartTimestamp: t0}}, "__name__", "with_start", "job", "f").with(counter),
		), rw2Header, http.StatusNoContent, "", true},
		{"two series, the same once the cluster label is gone", rw2Body(t,
			v2series(at(5000, 1), "__name__", "twin", "cluster", "x", "job", "h"),
			v2series(at(5000, 2), "__name__", "twin", "job", "h"),
		), rw2Header, http.StatusNoContent, "", true},
		{"empty request", rw2Body(t), rw2Header, http.StatusNoContent, "", true},
		{"no metric name", rw2Body(t, v2series(at(6000, 1), "job", "i"), v2series(at(6000, 1), "__name__", "named", "job", "i")), rw2Header, http.StatusBadRequest, "invalid metric name or labels", false},
		{"empty metric name", rw2Body(t, v2series(at(6000, 1), "__name__", "", "job", "i"), v2series(at(7000, 1), "__name__", "named", "job", "i")), rw2Header, http.StatusBadRequest, "invalid metric name or labels", false},
		{"empty label name", rw2Body(t, v2series(at(6000, 1), "__name__", "bad_name", "", "x")), rw2Header, http.StatusBadRequest, "invalid metric name or labels", false},
		{"invalid UTF-8 label name", rw2Body(t, v2series(at(6000, 1), "__name__", "bad_name", "\xff", "x")), rw2Header, http.StatusBadRequest, "invalid metric name or labels", false},
		{"invalid UTF-8 label value", rw2Body(t, v2series(at(6000, 1), "__name__", "bad_value", "job", "\xff")), rw2Header, http.StatusBadRequest, "invalid metric name or labels", false},
		{"duplicate label names", rw2Body(t, v2series(at(6000, 1), "__name__", "dup", "job", "j", "job", "k"), v2series(at(8000, 1), "__name__", "named", "job", "i")), rw2Header, http.StatusBadRequest, "duplicated label job", false},
		{"label reference outside the symbols", rw2Body(t, v2series(at(6000, 1), "__name__", "bad_ref").with(refs(1, 2, 3, 99))), rw2Header, http.StatusBadRequest, "outside of symbols table", false},
		{"odd number of label references", rw2Body(t, v2series(at(6000, 1), "__name__", "odd", "job").with(refs(1, 2, 3))), rw2Header, http.StatusBadRequest, "invalid labelRefs length 3", false},
		{"series without samples", rw2Body(t, v2series(nil, "__name__", "no_samples", "job", "g"), v2series(at(9000, 1), "__name__", "named", "job", "i")), rw2Header, http.StatusBadRequest, "at least one sample", false},
		{"shard label", rw2Body(t, v2series(at(6000, 1), "__name__", "sharded", "fleetpulse_shard", "3")), rw2Header, http.StatusNoContent, "", false},
		{"native histogram", rw2Body(t, v2series(nil, "__name__", "with_histogram").with(func(_ *writev2.SymbolsTable, ts *writev2.TimeSeries) {
			ts.Histograms = []writev2.Histogram{hist}
		})), rw2Header, http.StatusNoContent, "", false},
		{"native histogram too old", rw2Body(t, v2series(nil, "__name__", "with_histogram").with(func(_ *writev2.SymbolsTable, ts *writev2.TimeSeries) {
			ts.Histograms = []writev2.Histogram{writev2.FromIntHistogram(t0+old, &histogram1)}
		})), rw2Header, http.StatusBadRequest, tooOld + " for series {__name__=\"with_histogram\"}", false},
		{"exemplar", rw2Body(t, v2series(at(6000, 1), "__name__", "with_exemplar").with(func(st *writev2.SymbolsTable, ts *writev2.TimeSeries) {
			ts.Exemplars = []writev2.Exemplar{{LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize("abc")}, Value: 1, Timestamp: t0 + 6000}}
		})), rw2Header, http.StatusNoContent, "", false},
		{"illegal tag", withTrailer(t, rw2Body(t), 0), rw2Header, http.StatusBadRequest, "illegal tag 0", false},
		{"not snappy", []byte("definitely not a remote-write request"), rw2Header, http.StatusBadRequest, "", false},
		{"not protobuf", snappy.Encode(nil, []byte("\xff\xff\xff not protobuf")), rw2Header, http.StatusBadRequest, "", false},
		{"truncated", func() []byte {
			b, _ := snappy.Decode(nil, rw2Body(t, v2series(at(9000, 1), "__name__", "up", "job", "a")))
			return snappy.Encode(nil, b[:len(b)-3])
		}(), rw2Header, http.StatusBadRequest, "", false},
		{"other encoding", rw2Body(t), map[string]string{"Content-Type": rw2Header["Content-Type"], "Content-Encoding": "gzip"}, http.StatusUnsupportedMediaType, "", false},
		{"unknown field, which Prometheus skips", withTrailer(t, rw2Body(t, v2series(at(10000, 10), "__name__", "up", "job", "a")), 15<<3, 1), rw2Header, http.StatusNoContent, "", false},
		{"after all that, a valid request", rw2Body(t, v2series(at(11000, 11), "__name__", "up", "job", "a").with(gauge)), rw2Header, http.StatusNoContent, "", true},
	}

	got := compareAnswers(t, ooo, cases, "rw2.go", func(h *handler) int64 { return h.rw2Served.Load() })
	for _, s := range []string{`cluster="cluster-b"`, "fleetpulse_shard"} {
		if strings.Contains(got, s) {
			t.Errorf("stored %s:\n%s", s, got)
		}
	}
	for _, s := range []string{`{__name__="up", cluster="cluster-a", job="b"}`, `partially_written`} {
		if !strings.Contains(got, s) {
			t.Errorf("%s is not stored:\n%s", s, got)
		}
	}
}

// withTrailer is the request with bytes added after its fields: a field
// of a later version (Prometheus skips it, rw2.go leaves the request to
// it), or not protobuf.
func withTrailer(t testing.TB, body []byte, trailer ...byte) []byte {
	t.Helper()
	b, err := snappy.Decode(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, append(b, trailer...))
}

// TestRW2LabelsDoNotPointIntoTheRequest decodes requests as rw2.go does,
// appends them, then overwrites the decompressed bytes: the stored series
// must be intact, both those created by the request and those it appended
// to (and, with the bytes garbage, a second write to the same series must
// find them).
func TestRW2LabelsDoNotPointIntoTheRequest(t *testing.T) {
	t.Parallel()
	store := openStore(t, time.Hour, nil)
	h := newTestHandler(store, true)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	write := func(step int64) {
		raw, err := snappy.Decode(nil, rw2Body(t,
			v2series([]writev2.Sample{{Timestamp: t0 + step, Value: 1}}, "__name__", "kept", "cluster", "other", "job", "a", "pod", "p-1"),
			v2series([]writev2.Sample{{Timestamp: t0 + step, Value: 2}}, "__name__", "kept", "job", "a", "pod", "p-2"),
		))
		if err != nil {
			t.Fatal(err)
		}
		app, err := store.Appender(context.Background(), testCluster)
		if err != nil {
			t.Fatal(err)
		}
		req, refs := new(rw2Request), new(resolvedSlice)
		if !req.decode(raw) || !req.valid() {
			t.Fatal("rw2.go refused the request")
		}
		req.resolveKnown(refs, nil)
		if !req.prepare(testCluster, refsOf(app), refs) {
			t.Fatal("rw2.go refused the request")
		}
		if written, bad, err := h.appendRW2(app, req, refs); err != nil || len(bad) > 0 || written != 2 {
			t.Fatalf("appended %d, refused %v, error %v", written, bad, err)
		}
		if err := app.Commit(); err != nil {
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

// TestRW2LeavesMetadataOutsideTheSymbols: a series whose metadata names a
// symbol the request lacks is left to Prometheus's handler, which panics
// in writev2's ToMetadata; the hub refuses it with 400 instead, stores
// nothing and leaves no appender open, on either path.
func TestRW2LeavesMetadataOutsideTheSymbols(t *testing.T) {
	t.Parallel()
	for _, md := range []writev2.Metadata{{HelpRef: 99}, {UnitRef: 99}} {
		raw, err := (&writev2.Request{Symbols: []string{"", "__name__", "up"}, Timeseries: []writev2.TimeSeries{{
			LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Timestamp: 1, Value: 1}}, Metadata: md,
		}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		req := new(rw2Request)
		if !req.decode(raw) {
			t.Fatalf("%+v: not decoded", md)
		}
		if req.valid() {
			t.Errorf("%+v: rw2.go would answer it", md)
		}
		for _, fast := range []bool{true, false} {
			reg := prometheus.NewRegistry()
			store := openStore(t, time.Hour, reg)
			a := post(newTestHandler(store, fast), snappy.Encode(nil, raw), rw2Header)
			if a.code != http.StatusBadRequest || !strings.Contains(a.body, "malformed remote write request") {
				t.Errorf("%+v (own paths %t): %d %q, want 400 naming a malformed request", md, fast, a.code, a.body)
			}
			if got := dump(t, store); got != "" {
				t.Errorf("%+v (own paths %t): stored %s, want nothing", md, fast, got)
			}
			if n := shardsGauge(t, reg, "fleetpulse_hub_prometheus_tsdb_head_active_appenders"); n != 0 {
				t.Errorf("%+v (own paths %t): %v appenders left open", md, fast, n)
			}
		}
	}
}

// FuzzDecodeRW2: whatever rw2Request.decode accepts, Prometheus's own
// decoding (writev2.Request's generated Unmarshal, as its handler calls it)
// accepts too, with the same symbols, label references, samples and
// metadata references, and no histograms or exemplars; the rest goes to
// that handler. The seeds are requests of every field rw2.go reads (label
// references packed and not), of histograms and exemplars, each of their
// prefixes and each of their bytes changed.
func FuzzDecodeRW2(f *testing.F) {
	st := writev2.NewSymbolTable()
	valid, err := (&writev2.Request{
		Timeseries: []writev2.TimeSeries{
			{
				LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("up"), st.Symbolize("job"), st.Symbolize("a")},
				Samples:    []writev2.Sample{{Timestamp: 1, Value: 1}, {Timestamp: -2, Value: math.Inf(1), StartTimestamp: 1}},
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("help"), UnitRef: st.Symbolize("unit")},
			},
			{LabelsRefs: []uint32{1, 2}},
			{LabelsRefs: []uint32{1, 2}, Histograms: []writev2.Histogram{writev2.FromIntHistogram(1, &histogram1)}},
			{LabelsRefs: []uint32{1, 2}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3, 4}, Value: 1, Timestamp: 1}}},
		},
		Symbols: st.Symbols(),
	}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	// Unpacked label references, a sample and metadata given twice.
	unpacked := []byte{
		0x22, 0, 0x22, 2, 'u', 'p', // symbols "", "up"
		0x2a, 23, // timeseries
		0x08, 1, 0x08, 1, // labels_refs 1, 1 unpacked
		0x12, 4, 0x10, 1, 0x10, 2, // a sample, timestamp twice
		0x2a, 2, 0x18, 1, 0x2a, 2, 0x20, 1, // metadata twice: help_ref 1, then unit_ref 1
		0x0a, 3, 0x81, 0x80, 0x00, // labels_refs 1, packed, in three bytes
	}
	for _, seed := range [][]byte{valid, unpacked} {
		f.Add(seed)
		for i := range seed {
			f.Add(seed[:i])
			for _, b := range []byte{0x00, 0x01, 0x0a, 0x12, 0x22, 0x2a, 0x7f, 0x80, 0xff} {
				mutated := slices.Clone(seed)
				mutated[i] = b
				f.Add(mutated)
			}
		}
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		got := new(rw2Request)
		if !got.decode(buf) {
			return // for Prometheus's handler
		}
		var want writev2.Request
		if err := proto.Unmarshal(buf, &want); err != nil {
			t.Fatalf("decode accepts %q, which Prometheus refuses: %v", buf, err)
		}
		if !slices.Equal(got.symbols, want.Symbols) || len(got.series) != len(want.Timeseries) {
			t.Fatalf("%q: symbols %q and %d series, Prometheus %q and %d", buf, got.symbols, len(got.series), want.Symbols, len(want.Timeseries))
		}
		for i, s := range got.series {
			w := want.Timeseries[i]
			same := slices.Equal(s.refs, w.LabelsRefs) && len(s.samples) == len(w.Samples) &&
				s.help == w.Metadata.HelpRef && s.unit == w.Metadata.UnitRef && len(w.Histograms)+len(w.Exemplars) == 0
			for j := 0; same && j < len(s.samples); j++ {
				same = s.samples[j].Timestamp == w.Samples[j].Timestamp && math.Float64bits(s.samples[j].Value) == math.Float64bits(w.Samples[j].Value)
			}
			if !same {
				t.Fatalf("%q: series %d is %+v, Prometheus %+v", buf, i, s, w)
			}
		}
	})
}

// TestRW2PoolDropsOutsizedRequests: a request rw2.go answers that holds a
// million unused symbols and half a million samples does not stay in the
// request pool (whose arrays every later request would keep alive).
// Not parallel: it reads the pool.
func TestRW2PoolDropsOutsizedRequests(t *testing.T) {
	raw := []byte{0x22, 0, 0x22, 8, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x22, 2, 'u', 'p'}
	for range 1 << 20 {
		raw = append(raw, 0x22, 0x00) // an unused symbol ""
	}
	smpl := append([]byte{0x10}, appendVarint(nil, uint64(time.Now().UnixMilli()))...)
	ts := []byte{0x0a, 2, 1, 2}
	for range 1 << 19 {
		ts = append(ts, 0x12, byte(len(smpl)))
		ts = append(ts, smpl...)
	}
	raw = append(raw, 0x2a)
	raw = appendVarint(raw, uint64(len(ts)))
	raw = append(raw, ts...)
	h := newTestHandler(openStore(t, time.Hour, nil), true)
	cfg := limits.DefaultConfig()
	cfg.Default.SamplesPerRequest = 0 // outsized on purpose
	h.limits.Apply(cfg)
	if a := post(h, snappy.Encode(nil, raw), rw2Header); a.code != http.StatusNoContent || h.rw2Served.Load() != 1 {
		t.Fatalf("%d %q (served by rw2.go: %d), want 204 from rw2.go", a.code, a.body, h.rw2Served.Load())
	}
	req := rw2Pool.Get().(*rw2Request)
	if mib := (cap(req.symbols)*16 + cap(req.samples)*16 + cap(req.series)*int(unsafe.Sizeof(rw2Series{}))) >> 20; mib > 8 {
		t.Errorf("the pool keeps a request of %d MiB", mib)
	}
}

// TestRW2ChecksBeforeAllocating: a small request rw2.go refuses for a
// limit or hands to Prometheus's handler (4M label references of a symbol
// it lacks, over labels_per_series; 2M series without samples) costs
// rw2.go at most twice what Prometheus's own decoding of it costs (it
// costs 5× before its checks and counts). Not parallel: it counts the
// process's allocations.
func TestRW2ChecksBeforeAllocating(t *testing.T) {
	const n = 4 << 20
	refs := append([]byte{0x0a}, appendVarint(nil, n)...)
	refs = append(refs, make([]byte, n)...)
	refs = append(refs, 0x12, 0x00)
	badRefs := append([]byte{0x2a}, appendVarint(nil, uint64(len(refs)))...)
	badRefs = append(badRefs, refs...)
	var empty []byte
	for range 2 << 20 {
		empty = append(empty, 0x2a, 0x00)
	}
	allocated := func(f func()) uint64 {
		var a, b runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return (b.TotalAlloc - a.TotalAlloc) >> 20
	}
	h := newTestHandler(nil, true)
	for name, tc := range map[string]struct {
		raw  []byte
		code int // 0: handed on
	}{"4M references to a missing symbol": {badRefs, http.StatusBadRequest}, "2M series without samples": {empty, 0}} {
		body := snappy.Encode(nil, tc.raw)
		var served bool
		w := httptest.NewRecorder()
		fast := allocated(func() { served = h.writeRW2(w, nil, testCluster, body) })
		prom := allocated(func() {
			b, _ := snappy.Decode(nil, body)
			var req writev2.Request
			_ = proto.Unmarshal(b, &req)
		})
		if served != (tc.code != 0) || served && w.Code != tc.code {
			t.Errorf("%s: answered by rw2.go %v (%d %q), want %d (0: handed on)", name, served, w.Code, w.Body, tc.code)
		}
		if fast > 2*prom {
			t.Errorf("%s (%d KiB): rw2.go allocates %d MiB before handing it on, Prometheus's decoding %d MiB", name, len(body)>>10, fast, prom)
		}
	}
}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}
