package serieslimit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fleetpulse/fleetpulse/processors/serieslimit/internal/metadata"
)

func TestAllowlistAndCap(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	set := processortest.NewNopSettings(metadata.Type)
	set.TelemetrySettings.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	cfg := &Config{Include: []string{"k8s\\..*"}, Exclude: []string{"k8s\\.pod\\..*"}, MaxSeriesPerMetric: 3, SeriesTTL: time.Minute}
	sink := new(consumertest.MetricsSink)
	p, err := NewFactory().CreateMetrics(context.Background(), set, cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}

	// 5 series of an allowed metric (cap 3), 2 of an excluded one, 1 of a
	// name outside the allowlist.
	md := pmetric.NewMetrics()
	ms := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics()
	addGauge(ms, "k8s.node.allocatable.cpu", 5)
	addGauge(ms, "k8s.pod.status.phase", 2)
	addGauge(ms, "http.server.duration", 1)
	if err := p.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	got := sink.AllMetrics()[0]
	if n := got.DataPointCount(); n != 3 {
		t.Errorf("%d points passed, want the 3 series under the cap", n)
	}
	// The known series keep flowing; new ones are still refused.
	md = pmetric.NewMetrics()
	addGauge(md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics(), "k8s.node.allocatable.cpu", 5)
	if err := p.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	if n := sink.AllMetrics()[1].DataPointCount(); n != 3 {
		t.Errorf("second batch: %d points passed, want 3", n)
	}

	want := map[string]int64{reasonNotAllowed: 3, reasonOverLimit: 4}
	if got := droppedByReason(t, reader); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dropped counter = %v, want %v", got, want)
	}
}

func TestQuietSeriesFreeTheirSlot(t *testing.T) {
	l, err := newLimiter(&Config{MaxSeriesPerMetric: 1, SeriesTTL: time.Minute}, componenttest.NewNopTelemetrySettings())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	if !l.admit("m", 1, now) || l.admit("m", 2, now) {
		t.Fatal("cap of 1 not enforced")
	}
	if !l.admit("m", 2, now.Add(2*time.Minute)) {
		t.Error("series 2 refused after series 1 was quiet past the TTL")
	}
}

func TestConfigValidate(t *testing.T) {
	err := (&Config{Include: []string{"("}, MaxSeriesPerMetric: -1}).Validate()
	for _, want := range []string{`"include" pattern "("`, `"max_series_per_metric"`, `"series_ttl"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func addGauge(ms pmetric.MetricSlice, name string, series int) {
	m := ms.AppendEmpty()
	m.SetName(name)
	dps := m.SetEmptyGauge().DataPoints()
	for i := range series {
		dp := dps.AppendEmpty()
		dp.SetIntValue(int64(i))
		dp.Attributes().PutStr("k8s.node.name", fmt.Sprintf("node-%d", i))
	}
}

func droppedByReason(t *testing.T, reader *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "fleetpulse.series_limit.dropped_points" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				r, _ := dp.Attributes.Value("reason")
				out[r.AsString()] += dp.Value
			}
		}
	}
	return out
}
