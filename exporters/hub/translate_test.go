package hub

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fleetpulse/fleetpulse/exporters/hub/internal/metadata"
)

// t0 is a point timestamp with sub-millisecond digits, which are dropped.
const t0 = pcommon.Timestamp(1_700_000_000_123_456_789)

const ms0 = 1_700_000_000_123 // t0 in milliseconds

// metricsOf builds one resource (with attributes res) holding the metric that
// fill sets up.
func metricsOf(res map[string]any, fill func(m pmetric.Metric)) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	if err := rm.Resource().Attributes().FromRaw(res); err != nil {
		panic(err)
	}
	fill(rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty())
	return md
}

func putAttrs(m pcommon.Map, attrs map[string]any) {
	if err := m.FromRaw(attrs); err != nil {
		panic(err)
	}
}

func gauge(name, unit string, points ...func(pmetric.NumberDataPoint)) func(pmetric.Metric) {
	return func(m pmetric.Metric) {
		m.SetName(name)
		m.SetUnit(unit)
		g := m.SetEmptyGauge()
		for _, p := range points {
			p(g.DataPoints().AppendEmpty())
		}
	}
}

func sum(name, unit string, monotonic bool, temporality pmetric.AggregationTemporality, points ...func(pmetric.NumberDataPoint)) func(pmetric.Metric) {
	return func(m pmetric.Metric) {
		m.SetName(name)
		m.SetUnit(unit)
		s := m.SetEmptySum()
		s.SetIsMonotonic(monotonic)
		s.SetAggregationTemporality(temporality)
		for _, p := range points {
			p(s.DataPoints().AppendEmpty())
		}
	}
}

func intPoint(v int64, ts pcommon.Timestamp, attrs map[string]any) func(pmetric.NumberDataPoint) {
	return func(p pmetric.NumberDataPoint) {
		p.SetIntValue(v)
		p.SetTimestamp(ts)
		putAttrs(p.Attributes(), attrs)
	}
}

func doublePoint(v float64, ts pcommon.Timestamp, attrs map[string]any) func(pmetric.NumberDataPoint) {
	return func(p pmetric.NumberDataPoint) {
		p.SetDoubleValue(v)
		p.SetTimestamp(ts)
		putAttrs(p.Attributes(), attrs)
	}
}

func noValue(f func(pmetric.NumberDataPoint)) func(pmetric.NumberDataPoint) {
	return func(p pmetric.NumberDataPoint) {
		f(p)
		p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
	}
}

type histPoint struct {
	count  uint64
	sum    *float64
	bounds []float64
	counts []uint64
	attrs  map[string]any
	stale  bool
}

func histogram(name, unit string, temporality pmetric.AggregationTemporality, points ...histPoint) func(pmetric.Metric) {
	return func(m pmetric.Metric) {
		m.SetName(name)
		m.SetUnit(unit)
		h := m.SetEmptyHistogram()
		h.SetAggregationTemporality(temporality)
		for _, hp := range points {
			p := h.DataPoints().AppendEmpty()
			p.SetTimestamp(t0)
			p.SetCount(hp.count)
			if hp.sum != nil {
				p.SetSum(*hp.sum)
			}
			p.ExplicitBounds().FromRaw(hp.bounds)
			p.BucketCounts().FromRaw(hp.counts)
			putAttrs(p.Attributes(), hp.attrs)
			if hp.stale {
				p.SetFlags(pmetric.DefaultDataPointFlags.WithNoRecordedValue(true))
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

// show renders a series as `name{label="value",...} value@ms ...`, labels in
// the order the series holds them, the stale marker as "stale".
func show(ts prompb.TimeSeries) string {
	var b strings.Builder
	var name string
	var labels []string
	for _, l := range ts.Labels {
		if l.Name == "__name__" {
			name = l.Value
			continue
		}
		labels = append(labels, l.Name+"="+strconv.Quote(l.Value))
	}
	b.WriteString(name + "{" + strings.Join(labels, ",") + "}")
	for _, s := range ts.Samples {
		v := strconv.FormatFloat(s.Value, 'g', -1, 64)
		if math.Float64bits(s.Value) == staleNaN {
			v = "stale"
		}
		b.WriteString(" " + v + "@" + strconv.FormatInt(s.Timestamp, 10))
	}
	return b.String()
}

func TestToTimeSeries(t *testing.T) {
	cumulative, delta := pmetric.AggregationTemporalityCumulative, pmetric.AggregationTemporalityDelta
	pod := map[string]any{"k8s.cluster.name": "cluster-a", "k8s.pod.name": "web-0"}
	ts := func(n int64) string { return "@" + strconv.FormatInt(n, 10) }
	for _, tc := range []struct {
		name    string
		res     map[string]any
		metric  func(pmetric.Metric)
		want    []string
		dropped map[dropReason]int
	}{{
		name:   "int gauge in bytes",
		metric: gauge("k8s.pod.memory.usage", "By", intPoint(1024, t0, pod)),
		want:   []string{`k8s_pod_memory_usage_bytes{k8s_cluster_name="cluster-a",k8s_pod_name="web-0"} 1024` + ts(ms0)},
	}, {
		name:   "double gauge with unit 1 is a ratio",
		metric: gauge("k8s.node.cpu.utilization", "1", doublePoint(0.25, t0, map[string]any{"k8s.node.name": "n1"})),
		want:   []string{`k8s_node_cpu_utilization_ratio{k8s_node_name="n1"} 0.25` + ts(ms0)},
	}, {
		name:   "annotation units are dropped",
		metric: gauge("k8s.deployment.available", "{pod}", intPoint(3, t0, nil)),
		want:   []string{`k8s_deployment_available{} 3` + ts(ms0)},
	}, {
		name:   "per-unit",
		metric: gauge("net.rate", "By/s", doublePoint(1.5, t0, nil)),
		want:   []string{`net_rate_bytes_per_second{} 1.5` + ts(ms0)},
	}, {
		name:   "monotonic cumulative sum is a counter",
		metric: sum("k8s.container.restarts", "{restart}", true, cumulative, intPoint(7, t0, pod)),
		want:   []string{`k8s_container_restarts_total{k8s_cluster_name="cluster-a",k8s_pod_name="web-0"} 7` + ts(ms0)},
	}, {
		name:   "counter with unit and total already in the name",
		metric: sum("process.cpu.time.total", "s", true, cumulative, doublePoint(12.5, t0, nil)),
		want:   []string{`process_cpu_time_seconds_total{} 12.5` + ts(ms0)},
	}, {
		name:   "non-monotonic cumulative sum has no _total",
		metric: sum("queue.size", "", false, cumulative, intPoint(-2, t0, nil)),
		want:   []string{`queue_size{} -2` + ts(ms0)},
	}, {
		name:    "delta sum is dropped",
		metric:  sum("requests", "", true, delta, intPoint(1, t0, nil), intPoint(2, t0, nil)),
		dropped: map[dropReason]int{dropNonCumulativeSum: 2},
	}, {
		name: "histogram",
		metric: histogram("http.server.duration", "s", cumulative, histPoint{
			count: 6, sum: ptr(4.5), bounds: []float64{0.1, 1}, counts: []uint64{1, 2, 3}, attrs: map[string]any{"route": "/"},
		}),
		want: []string{
			`http_server_duration_seconds_sum{route="/"} 4.5` + ts(ms0),
			`http_server_duration_seconds_count{route="/"} 6` + ts(ms0),
			`http_server_duration_seconds_bucket{le="0.1",route="/"} 1` + ts(ms0),
			`http_server_duration_seconds_bucket{le="1",route="/"} 3` + ts(ms0),
			`http_server_duration_seconds_bucket{le="+Inf",route="/"} 6` + ts(ms0),
		},
	}, {
		name:   "histogram without sum or bounds",
		metric: histogram("latency", "ms", cumulative, histPoint{count: 2, counts: []uint64{2}}),
		want: []string{
			`latency_milliseconds_count{} 2` + ts(ms0),
			`latency_milliseconds_bucket{le="+Inf"} 2` + ts(ms0),
		},
	}, {
		name:    "delta histogram is dropped",
		metric:  histogram("latency", "ms", delta, histPoint{count: 1}),
		dropped: map[dropReason]int{dropNonCumulativeHistogram: 1},
	}, {
		name: "stale histogram",
		metric: histogram("latency", "", cumulative, histPoint{
			count: 1, sum: ptr(1.0), bounds: []float64{5}, counts: []uint64{1, 0}, stale: true,
		}),
		want: []string{
			`latency_sum{} stale` + ts(ms0),
			`latency_count{} stale` + ts(ms0),
			`latency_bucket{le="5"} stale` + ts(ms0),
			`latency_bucket{le="+Inf"} stale` + ts(ms0),
		},
	}, {
		name: "summary",
		metric: func(m pmetric.Metric) {
			m.SetName("rpc.duration")
			m.SetUnit("ms")
			p := m.SetEmptySummary().DataPoints().AppendEmpty()
			p.SetTimestamp(t0)
			p.SetCount(10)
			p.SetSum(123.5)
			p.Attributes().PutStr("svc", "a")
			q := p.QuantileValues().AppendEmpty()
			q.SetQuantile(0.5)
			q.SetValue(10)
			q = p.QuantileValues().AppendEmpty()
			q.SetQuantile(0.99)
			q.SetValue(40)
		},
		want: []string{
			`rpc_duration_milliseconds_sum{svc="a"} 123.5` + ts(ms0),
			`rpc_duration_milliseconds_count{svc="a"} 10` + ts(ms0),
			`rpc_duration_milliseconds{quantile="0.5",svc="a"} 10` + ts(ms0),
			`rpc_duration_milliseconds{quantile="0.99",svc="a"} 40` + ts(ms0),
		},
	}, {
		name: "exponential histogram is dropped",
		metric: func(m pmetric.Metric) {
			m.SetName("exp")
			h := m.SetEmptyExponentialHistogram()
			h.SetAggregationTemporality(cumulative)
			h.DataPoints().AppendEmpty().SetCount(1)
		},
		dropped: map[dropReason]int{dropExponentialHistogram: 1},
	}, {
		name:    "metric without data is dropped",
		metric:  func(m pmetric.Metric) { m.SetName("empty") },
		dropped: map[dropReason]int{dropUnsupportedType: 1},
	}, {
		name:    "name that cannot be made valid",
		metric:  gauge("...", "", intPoint(1, t0, nil)),
		dropped: map[dropReason]int{dropInvalidMetricName: 1},
	}, {
		name:   "no recorded value is the stale marker",
		metric: gauge("up", "", noValue(doublePoint(1, t0, nil))),
		want:   []string{`up{} stale` + ts(ms0)},
	}, {
		name:   "points of one series share it, in input order",
		metric: gauge("temp", "Cel", doublePoint(20, t0, nil), doublePoint(21, t0+1e9, nil), doublePoint(5, t0, map[string]any{"x": "y"})),
		want: []string{
			`temp_celsius{} 20` + ts(ms0) + ` 21` + ts(ms0+1000),
			`temp_celsius{x="y"} 5` + ts(ms0),
		},
	}, {
		name: "label names sanitised, sorted; colliding ones joined in original-name order",
		metric: gauge("g", "", intPoint(1, t0, map[string]any{
			"a_b": "3", "a.b": "1", "a/b": "2", // '.' < '/' < '_'
			"c.d": "same", "c_d": "same", // equal values are not repeated
			"0zone": "z", "_private": "p", "__meta": "m", "kéy": "k",
			"int": 42, "bool": true, "float": 0.5, "..": "dots",
		})),
		want: []string{`g{a_b="1;2;3",bool="true",c_d="same",float="0.5",int="42",k_y="k",key_="dots",key_0zone="z",key_meta="m",key_private="p"} 1` + ts(ms0)},
	}, {
		name:    "attribute name that cannot be made a label",
		metric:  gauge("g", "", intPoint(1, t0, map[string]any{"____": "x"}), intPoint(2, t0, nil)),
		want:    []string{`g{} 2` + ts(ms0)},
		dropped: map[dropReason]int{dropInvalidLabelName: 1},
	}, {
		name:   "service attributes give job and instance",
		res:    map[string]any{"service.name": "agent", "service.namespace": "fleet", "service.instance.id": "i-1"},
		metric: gauge("g", "", intPoint(1, t0, map[string]any{"service.name": "agent", "job": "overridden"})),
		want:   []string{`g{instance="i-1",job="fleet/agent",service_name="agent"} 1` + ts(ms0)},
	}, {
		name: "le, quantile and __name__ attributes give way to the series' own",
		metric: histogram("h", "", cumulative, histPoint{
			count: 1, bounds: []float64{2}, counts: []uint64{1, 0}, attrs: map[string]any{"le": "x", "__name__": "y"},
		}),
		want: []string{
			`h_count{le="x"} 1` + ts(ms0),
			`h_bucket{le="2"} 1` + ts(ms0),
			`h_bucket{le="+Inf"} 1` + ts(ms0),
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			series, dropped := toTimeSeries(metricsOf(tc.res, tc.metric))
			var got []string
			for _, s := range series {
				if !slices.IsSortedFunc(s.Labels, byName) {
					t.Errorf("labels not sorted: %v", s.Labels)
				}
				got = append(got, show(s))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("series:\n got %q\nwant %q", got, tc.want)
			}
			wantTotal := 0
			for r := range numDropReasons {
				wantTotal += tc.dropped[r]
				if dropped.points[r] != tc.dropped[r] {
					t.Errorf("dropped for %q: %d points, want %d", r, dropped.points[r], tc.dropped[r])
				}
			}
			if dropped.total() != wantTotal {
				t.Errorf("dropped %d points in all, want %d", dropped.total(), wantTotal)
			}

			// Remote write 2.0 carries the same series, through its symbol
			// table and the wire format, and drops the same points.
			req, samples, dropped2 := toWriteV2(metricsOf(tc.res, tc.metric))
			decoded := decodeV2(t, req)
			var got2 []string
			wantSamples := 0
			for _, s := range decoded {
				got2 = append(got2, show(s.series))
				wantSamples += len(s.series.Samples)
			}
			if !slices.Equal(got2, tc.want) {
				t.Errorf("2.0 series:\n got %q\nwant %q", got2, tc.want)
			}
			if samples != wantSamples {
				t.Errorf("2.0 request counted %d samples, holds %d", samples, wantSamples)
			}
			if dropped2 != dropped {
				t.Errorf("2.0 dropped %v, 1.0 %v", dropped2, dropped)
			}
		})
	}
}

// TestPushMetricsSendsRemoteWrite checks what reaches the hub: one snappy
// protobuf remote-write 1.0 request with the converted series, and a warning
// naming what was dropped.
func TestPushMetricsSendsRemoteWrite(t *testing.T) {
	var (
		mu   sync.Mutex
		reqs []prompb.WriteRequest
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var wr prompb.WriteRequest
		if err == nil {
			err = wr.Unmarshal(raw)
		}
		if err != nil || r.Header.Get("Content-Encoding") != "snappy" || r.Header.Get("X-Prometheus-Remote-Write-Version") != "0.1.0" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		reqs = append(reqs, wr)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	cfg := createDefaultConfig()
	cfg.Endpoint = srv.URL
	exp, logs := startUnqueued(t, cfg)

	md := metricsOf(map[string]any{"k8s.cluster.name": "cluster-a"},
		sum("k8s.container.restarts", "", true, pmetric.AggregationTemporalityCumulative, intPoint(2, t0, map[string]any{"k8s.pod.name": "web-0"})))
	sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	sum("delta.requests", "", true, pmetric.AggregationTemporalityDelta, intPoint(1, t0, nil), intPoint(1, t0, nil))(sm.Metrics().AppendEmpty())
	if err := exp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 1 || len(reqs[0].Timeseries) != 1 {
		t.Fatalf("hub got %d requests %v, want one with one series", len(reqs), reqs)
	}
	// The resource attribute arrives as a label (resourcetotelemetry).
	want := `k8s_container_restarts_total{k8s_cluster_name="cluster-a",k8s_pod_name="web-0"} 2@` + strconv.Itoa(ms0)
	if got := show(reqs[0].Timeseries[0]); got != want {
		t.Errorf("series %s, want %s", got, want)
	}
	warned := logs.FilterMessage("metric points not sent as remote write").All()
	if len(warned) != 1 {
		t.Fatalf("got warnings %v, want one", logs.All())
	}
	f := warned[0].ContextMap()
	if f["reason"] != dropNonCumulativeSum.String() || f["points"] != int64(2) || f["example_metric"] != "delta.requests" {
		t.Errorf("warning fields %v", f)
	}
}

// podMetrics is one scrape of a 3,000-pod cluster: ten gauges per pod.
func podMetrics() pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.cluster.name", "cluster-a")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	now := pcommon.NewTimestampFromTime(time.Now())
	for m := range 10 {
		g := ms.AppendEmpty()
		g.SetName("k8s.pod.metric." + strconv.Itoa(m))
		g.SetUnit("By")
		g.SetDescription("Pod metric " + strconv.Itoa(m))
		dps := g.SetEmptyGauge().DataPoints()
		for p := range 3000 {
			dp := dps.AppendEmpty()
			dp.SetTimestamp(now)
			dp.SetIntValue(int64(p))
			dp.Attributes().PutStr("k8s.cluster.name", "cluster-a")
			dp.Attributes().PutStr("k8s.namespace.name", "ns-"+strconv.Itoa(p%50))
			dp.Attributes().PutStr("k8s.pod.name", "pod-"+strconv.Itoa(p))
			dp.Attributes().PutStr("k8s.node.name", "node-"+strconv.Itoa(p%100))
		}
	}
	return md
}

func BenchmarkToTimeSeries(b *testing.B) {
	md := podMetrics()
	b.ReportAllocs()
	for b.Loop() {
		series, _ := toTimeSeries(md)
		if len(series) != 30000 {
			b.Fatal(len(series))
		}
	}
}

// BenchmarkEncode compares remote write 1.0 and 2.0 on one scrape of a
// 3,000-pod cluster (30,000 samples): ns/op is the whole encoding
// (translation, protobuf, snappy), B/sample the bytes sent per sample,
// raw-B/sample before snappy.
func BenchmarkEncode(b *testing.B) {
	md := podMetrics()
	const samples = 30000
	for _, bc := range []struct {
		name   string
		encode func() ([]byte, error)
	}{{
		name: "rw1",
		encode: func() ([]byte, error) {
			series, _ := toTimeSeries(md)
			return (&prompb.WriteRequest{Timeseries: series}).Marshal()
		},
	}, {
		name: "rw2",
		encode: func() ([]byte, error) {
			req, _, _ := toWriteV2(md)
			return req.OptimizedMarshal(nil)
		},
	}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			var raw, sent int
			for b.Loop() {
				pb, err := bc.encode()
				if err != nil {
					b.Fatal(err)
				}
				raw, sent = len(pb), len(snappy.Encode(nil, pb))
			}
			b.ReportMetric(float64(raw)/samples, "raw-B/sample")
			b.ReportMetric(float64(sent)/samples, "B/sample")
		})
	}
}

// startUnqueued starts a metrics exporter that sends synchronously (no
// queue, no retries), so a test sees each send's outcome, and returns it with
// its warnings; it shuts down when the test ends.
func startUnqueued(t *testing.T, cfg *Config) (exporter.Metrics, *observer.ObservedLogs) {
	t.Helper()
	cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
	cfg.BackOffConfig.Enabled = false
	set := exportertest.NewNopSettings(metadata.Type)
	core, logs := observer.New(zapcore.WarnLevel)
	set.Logger = zap.New(core)
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), testHost{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = exp.Shutdown(context.Background()) })
	return exp, logs
}
