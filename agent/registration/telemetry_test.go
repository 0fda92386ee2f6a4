package registration

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestTelemetryExtensionPublishesStats(t *testing.T) {
	s := NewStats()
	s.heartbeats.inc(ResultOK)
	s.heartbeats.inc(ResultOK)
	s.heartbeats.inc(ResultError)
	s.renewals.inc(ResultOK)
	s.registrations.inc(ResultPending)
	s.expiry.Store(1_800_000_000)

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	f := NewTelemetryFactory(s)
	set := extension.Settings{ID: component.NewID(TelemetryType), TelemetrySettings: componenttest.NewNopTelemetrySettings()}
	set.MeterProvider = mp
	ext, err := f.Create(context.Background(), set, f.CreateDefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					r, _ := p.Attributes.Value(attribute.Key("result"))
					got[m.Name+"/"+r.AsString()] = p.Value
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					got[m.Name] = p.Value
				}
			}
		}
	}
	for k, want := range map[string]int64{
		"fleetpulse.agent.heartbeats/ok": 2, "fleetpulse.agent.heartbeats/error": 1, "fleetpulse.agent.heartbeats/deregistered": 0,
		"fleetpulse.agent.certificate.renewals/ok":      1,
		"fleetpulse.agent.registrations/pending":        1,
		"fleetpulse.agent.certificate.expiry_timestamp": 1_800_000_000,
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %d (present %v), want %d; all: %v", k, v, ok, want, got)
		}
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
