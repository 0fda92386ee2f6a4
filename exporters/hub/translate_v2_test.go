package hub

import (
	"fmt"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// decodedSeries is one series of a 2.0 request as a receiver reads it.
type decodedSeries struct {
	series prompb.TimeSeries // labels sorted by name, samples as sent
	meta   string            // "<type> unit=<unit> help=<help>"
}

// decodeV2 encodes req, decodes the bytes into a fresh request and reads
// every series back through the symbol table, as a receiver does. It fails
// the test on what the 2.0 specification forbids or the exporter never
// sends: a symbol table not starting with "", a symbol twice or never
// referenced, label names not sorted, histograms, exemplars, start
// timestamps.
func decodeV2(t *testing.T, req *writev2.Request) []decodedSeries {
	t.Helper()
	raw, err := req.OptimizedMarshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got writev2.Request
	if err := got.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	syms := got.Symbols
	if len(syms) == 0 || syms[0] != "" {
		t.Fatalf("symbols %q: want the empty string first", syms)
	}
	index := map[string]int{}
	for i, s := range syms {
		if j, ok := index[s]; ok {
			t.Errorf("symbol %q at %d and %d", s, j, i)
		}
		index[s] = i
	}
	used := make([]bool, len(syms))
	used[0] = true
	ref := func(r uint32) string {
		if int(r) >= len(syms) {
			t.Fatalf("reference %d outside the %d symbols", r, len(syms))
		}
		used[r] = true
		return syms[r]
	}
	b := labels.NewScratchBuilder(0)
	var out []decodedSeries
	for _, ts := range got.Timeseries {
		var names []string
		for i := 0; i+1 < len(ts.LabelsRefs); i += 2 {
			names = append(names, ref(ts.LabelsRefs[i]))
			ref(ts.LabelsRefs[i+1])
		}
		if !slices.IsSorted(names) {
			t.Errorf("label names not sorted: %q", names)
		}
		ls, err := ts.ToLabels(&b, syms)
		if err != nil {
			t.Fatal(err)
		}
		var d decodedSeries
		ls.Range(func(l labels.Label) {
			d.series.Labels = append(d.series.Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		for _, s := range ts.Samples {
			if s.StartTimestamp != 0 {
				t.Errorf("%s: start timestamp %d sent", ls, s.StartTimestamp)
			}
			d.series.Samples = append(d.series.Samples, prompb.Sample{Value: s.Value, Timestamp: s.Timestamp})
		}
		if len(ts.Histograms) > 0 || len(ts.Exemplars) > 0 {
			t.Errorf("%s: %d histograms, %d exemplars sent", ls, len(ts.Histograms), len(ts.Exemplars))
		}
		ref(ts.Metadata.UnitRef)
		ref(ts.Metadata.HelpRef)
		m := ts.ToMetadata(syms)
		d.meta = fmt.Sprintf("%s unit=%q help=%q", m.Type, m.Unit, m.Help)
		out = append(out, d)
	}
	for i, u := range used {
		if !u {
			t.Errorf("symbol %q sent but never referenced", syms[i])
		}
	}
	return out
}

func described(desc string, f func(pmetric.Metric)) func(pmetric.Metric) {
	return func(m pmetric.Metric) {
		f(m)
		m.SetDescription(desc)
	}
}

// TestToWriteV2Metadata checks every series' type, unit and help, as
// Prometheus' own OTLP translation gives them.
func TestToWriteV2Metadata(t *testing.T) {
	cumulative := pmetric.AggregationTemporalityCumulative
	node := map[string]any{"k8s.node.name": "n1"}
	md := metricsOf(map[string]any{"k8s.cluster.name": "cluster-a"}, described("Memory allocatable to pods",
		gauge("k8s.node.allocatable.memory", "By", intPoint(4096, t0, node))))
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for _, fill := range []func(pmetric.Metric){
		described("Container restarts", sum("k8s.container.restarts", "{restart}", true, cumulative, intPoint(3, t0, node))),
		sum("queue.size", "{item}", false, cumulative, intPoint(7, t0, nil)),
		gauge("k8s.node.cpu.utilization", "1", doublePoint(0.5, t0, node)),
		described("Request duration", histogram("http.server.duration", "s", cumulative, histPoint{
			count: 2, sum: ptr(0.3), bounds: []float64{0.1}, counts: []uint64{1, 1},
		})),
		func(m pmetric.Metric) {
			m.SetName("rpc.duration")
			m.SetUnit("ms")
			p := m.SetEmptySummary().DataPoints().AppendEmpty()
			p.SetTimestamp(t0)
			p.SetCount(4)
			p.SetSum(10)
			q := p.QuantileValues().AppendEmpty()
			q.SetQuantile(0.5)
			q.SetValue(2)
		},
	} {
		fill(ms.AppendEmpty())
	}
	req, samples, dropped := toWriteV2(md)
	if dropped.total() != 0 {
		t.Errorf("dropped %v", dropped)
	}
	at := fmt.Sprintf("@%d", ms0)
	want := []string{
		`k8s_node_allocatable_memory_bytes{k8s_node_name="n1"} 4096` + at + ` gauge unit="bytes" help="Memory allocatable to pods"`,
		`k8s_container_restarts_total{k8s_node_name="n1"} 3` + at + ` counter unit="" help="Container restarts"`,
		`queue_size{} 7` + at + ` gauge unit="" help=""`,
		`k8s_node_cpu_utilization_ratio{k8s_node_name="n1"} 0.5` + at + ` gauge unit="" help=""`,
		`http_server_duration_seconds_sum{} 0.3` + at + ` histogram unit="seconds" help="Request duration"`,
		`http_server_duration_seconds_count{} 2` + at + ` histogram unit="seconds" help="Request duration"`,
		`http_server_duration_seconds_bucket{le="0.1"} 1` + at + ` histogram unit="seconds" help="Request duration"`,
		`http_server_duration_seconds_bucket{le="+Inf"} 2` + at + ` histogram unit="seconds" help="Request duration"`,
		`rpc_duration_milliseconds_sum{} 10` + at + ` summary unit="milliseconds" help=""`,
		`rpc_duration_milliseconds_count{} 4` + at + ` summary unit="milliseconds" help=""`,
		`rpc_duration_milliseconds{quantile="0.5"} 2` + at + ` summary unit="milliseconds" help=""`,
	}
	var got []string
	for _, d := range decodeV2(t, req) {
		got = append(got, show(d.series)+" "+d.meta)
	}
	if !slices.Equal(got, want) {
		t.Errorf("series:\n got %q\nwant %q", got, want)
	}
	if samples != len(want) {
		t.Errorf("request counted %d samples, want %d", samples, len(want))
	}
}

// TestToWriteV2SymbolTable checks the exact symbol table and references of
// a small request after a round trip through the wire format: every string
// once, in order of first use, "" first.
func TestToWriteV2SymbolTable(t *testing.T) {
	md := metricsOf(nil, described("Room temperature", gauge("temp", "Cel",
		doublePoint(20, t0, map[string]any{"room": "a"}),
		doublePoint(21, t0, map[string]any{"room": "b"}),
		doublePoint(22, t0+1e6, map[string]any{"room": "a"}))))
	req, samples, _ := toWriteV2(md)
	decodeV2(t, req) // the specification's rules
	raw, err := req.OptimizedMarshal(nil)
	if err != nil {
		t.Fatal(err)
	}
	var got writev2.Request
	if err := got.Unmarshal(raw); err != nil {
		t.Fatal(err)
	}
	wantSymbols := []string{"", "__name__", "temp_celsius", "room", "a", "celsius", "Room temperature", "b"}
	if !slices.Equal(got.Symbols, wantSymbols) {
		t.Errorf("symbols %q, want %q", got.Symbols, wantSymbols)
	}
	meta := writev2.Metadata{Type: writev2.Metadata_METRIC_TYPE_GAUGE, UnitRef: 5, HelpRef: 6}
	want := []writev2.TimeSeries{
		{LabelsRefs: []uint32{1, 2, 3, 4}, Samples: []writev2.Sample{{Value: 20, Timestamp: ms0}, {Value: 22, Timestamp: ms0 + 1}}, Metadata: meta},
		{LabelsRefs: []uint32{1, 2, 3, 7}, Samples: []writev2.Sample{{Value: 21, Timestamp: ms0}}, Metadata: meta},
	}
	if fmt.Sprint(got.Timeseries) != fmt.Sprint(want) {
		t.Errorf("series\n %v\nwant\n %v", got.Timeseries, want)
	}
	if samples != 3 {
		t.Errorf("request counted %d samples, want 3", samples)
	}
}
