package ingest

import (
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// FuzzHandlerRW1 and FuzzHandlerRW2 post whatever the fuzzer makes to the
// whole handler (its own paths, Prometheus's handler behind them, the
// limits and a real store), as the body's protobuf snappy-compressed or as
// the raw body. The decoders (FuzzDecodeSeries, FuzzDecodeRW2) are checked
// against Prometheus's decoding; these check what an agent, or anyone who
// reaches the port, gets: an answer within a deadline, never a panic nor a
// 5xx, a 4xx that says what was wrong, and no appender left open.
func FuzzHandlerRW1(f *testing.F) {
	now := time.Now().UnixMilli()
	valid := []*prompb.WriteRequest{
		{Timeseries: []prompb.TimeSeries{
			series("up", []prompb.Sample{{Timestamp: now, Value: 1}, {Timestamp: now + 1000, Value: 2}}, "job", "a", "cluster", "x"),
			series("stale", []prompb.Sample{{Timestamp: now, Value: math.Float64frombits(value.StaleNaN)}}, "job", "a"),
		}},
		{Timeseries: []prompb.TimeSeries{series("", []prompb.Sample{{Timestamp: now, Value: 1}}, "job", "a")}},
		{Timeseries: []prompb.TimeSeries{{
			Labels:    []prompb.Label{{Name: "__name__", Value: "e"}},
			Samples:   []prompb.Sample{{Timestamp: now, Value: 1}},
			Exemplars: []prompb.Exemplar{{Labels: []prompb.Label{{Name: "trace_id", Value: "1"}}, Value: 1, Timestamp: now}},
		}}},
		{Timeseries: []prompb.TimeSeries{{Labels: []prompb.Label{{Name: "__name__", Value: "h"}}, Histograms: []prompb.Histogram{prompb.FromIntHistogram(now, &histogram1)}}}},
		{
			Timeseries: []prompb.TimeSeries{series("up", []prompb.Sample{{Timestamp: now, Value: 1}}, "z", "1", "a", "2")},
			Metadata:   []prompb.MetricMetadata{{MetricFamilyName: "up", Type: prompb.MetricMetadata_GAUGE, Help: "h"}},
		},
	}
	for _, req := range valid {
		addSeeds(f, rw1Proto(f, req))
	}
	fuzzHandler(f, nil)
}

func FuzzHandlerRW2(f *testing.F) {
	now := time.Now().UnixMilli()
	st := writev2.NewSymbolTable()
	valid, err := (&writev2.Request{
		Timeseries: []writev2.TimeSeries{
			{
				LabelsRefs: []uint32{st.Symbolize("__name__"), st.Symbolize("up"), st.Symbolize("job"), st.Symbolize("a")},
				Samples:    []writev2.Sample{{Timestamp: now, Value: 1}, {Timestamp: now + 1000, Value: 2, StartTimestamp: now}},
				Metadata:   writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, HelpRef: st.Symbolize("help"), UnitRef: st.Symbolize("unit")},
			},
			{LabelsRefs: []uint32{1, 2, st.Symbolize("cluster"), st.Symbolize("x")}, Samples: []writev2.Sample{{Timestamp: now, Value: 3}}},
			{LabelsRefs: []uint32{1, st.Symbolize("h")}, Histograms: []writev2.Histogram{writev2.FromIntHistogram(now, &histogram1)}},
			{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Timestamp: now, Value: 1}}, Exemplars: []writev2.Exemplar{{LabelsRefs: []uint32{3, 4}, Value: 1, Timestamp: now}}},
		},
		Symbols: st.Symbols(),
	}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, valid)
	// A native histogram older than the out-of-order window allows, after
	// a sample that makes it so: too old, which must be a 400 naming it.
	old, err := (&writev2.Request{
		Timeseries: []writev2.TimeSeries{
			{LabelsRefs: []uint32{1, 2}, Samples: []writev2.Sample{{Timestamp: now, Value: 1}}},
			{LabelsRefs: []uint32{1, 3}, Histograms: []writev2.Histogram{writev2.FromIntHistogram(now-3*time.Hour.Milliseconds(), &histogram1)}},
		},
		Symbols: []string{"", "__name__", "up", "h"},
	}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	addSeeds(f, old)
	// Metadata naming a symbol the request lacks: Prometheus's decoding
	// panics on it, the hub answers 400.
	addSeeds(f, []byte{0x22, 0, 0x22, 8, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x22, 1, 'm',
		0x2a, 12, 0x0a, 2, 1, 2, 0x12, 2, 0x10, 1, 0x2a, 2, 0x18, 9})
	fuzzHandler(f, rw2Header)
}

// answerWithin bounds the time to answer one input (a few KiB at most):
// short enough that a stuck input is reported within a CI run's 10 s.
const answerWithin = 5 * time.Second

// addSeeds adds the request compressed, as sent, and a few of its
// truncations as the raw body.
func addSeeds(f *testing.F, b []byte) {
	f.Add(b, false)
	f.Add(b, true)
	f.Add(b[:len(b)/2], false)
	f.Add(snappy.Encode(nil, b)[:len(b)/2], true)
}

// fuzzHandler fuzzes the handler with requests of the given headers (nil:
// remote write 1.0's). Each input comes from another cluster (one of a
// few hundred), so that no one cluster's head-series limit fills.
func fuzzHandler(f *testing.F, header map[string]string) {
	appenders := &watched{Registerer: prometheus.NewRegistry(), name: "fleetpulse_hub_prometheus_tsdb_head_active_appenders"}
	store := openStore(f, metricstore.DefaultConfig().OutOfOrderWindow, appenders)
	var calls atomic.Uint64
	h := newHandler(store, Options{MaxRequestBytes: 1 << 20})
	f.Fuzz(func(t *testing.T, msg []byte, raw bool) {
		body := msg
		if !raw {
			body = snappy.Encode(nil, msg)
		}
		cluster := fmt.Sprintf("cluster-%d", calls.Add(1)%512)
		var a answer
		done := make(chan any, 1)
		go func() {
			defer func() { done <- recover() }()
			a = postAs(h, cluster, body, header)
		}()
		select {
		case p := <-done:
			if p != nil {
				t.Fatalf("the handler panics on %q: %v", body, p)
			}
		case <-time.After(answerWithin):
			t.Fatalf("no answer within %s to %q", answerWithin, body)
		}
		switch msg := strings.TrimSpace(a.body); {
		case a.code >= 500:
			t.Fatalf("%d %q for %q: bad input must get a 4xx", a.code, msg, body)
		case a.code >= 400 && msg == "":
			t.Fatalf("%d without a message for %q", a.code, body)
		case a.code < 200 || a.code >= 300 && a.code < 400:
			t.Fatalf("%d %q for %q: want 2xx or 4xx", a.code, msg, body)
		}
		if n := appenders.sum(t); n != 0 {
			t.Fatalf("%d %q for %q left %v appenders open", a.code, a.body, body, n)
		}
	})
}

// watched is a Registerer that keeps the collectors of one metric, so that
// it can be read after every input without gathering all the store's
// metrics (which costs more than the request).
type watched struct {
	prometheus.Registerer
	name       string
	collectors []prometheus.Collector
}

func (w *watched) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 64)
	go func() {
		c.Describe(descs)
		close(descs)
	}()
	for d := range descs {
		if strings.Contains(d.String(), `fqName: "`+w.name+`"`) {
			w.collectors = append(w.collectors, c)
		}
	}
	return w.Registerer.Register(c)
}

func (w *watched) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := w.Register(c); err != nil {
			panic(err)
		}
	}
}

// sum is the metric's value summed over its series (the store's shards).
func (w *watched) sum(t *testing.T) float64 {
	if len(w.collectors) == 0 {
		t.Fatalf("the store registers no %s", w.name)
	}
	total := 0.0
	for _, c := range w.collectors {
		ms := make(chan prometheus.Metric, 64)
		go func() {
			c.Collect(ms)
			close(ms)
		}()
		for m := range ms {
			var pb dto.Metric
			if err := m.Write(&pb); err != nil {
				t.Fatal(err)
			}
			total += pb.GetGauge().GetValue()
		}
	}
	return total
}
