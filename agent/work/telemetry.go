package work

import (
	"context"
	"errors"
	"sync/atomic"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fleetpulse/fleetpulse/agent/internal/selftelemetry"
)

// Results counted by Stats, the values of the result attribute.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// Stats counts what the work agent does, for the agent's own telemetry.
// Counts are kept in atomics, so an Agent counts whether or not a Collector
// publishes them (see NewTelemetryFactory).
type Stats struct {
	applies, lists, reports [2]atomic.Int64 // by result: ok, error
	drifts                  atomic.Int64
	works                   atomic.Int64
}

// NewStats returns zero counts.
func NewStats() *Stats { return &Stats{} }

func resultIndex(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

var results = [2]string{ResultOK, ResultError}

// Applies returns how many manifest applies ended with result.
func (s *Stats) Applies(result string) int64 { return get(&s.applies, result) }

// Drifts returns how many drifted objects were put back.
func (s *Stats) Drifts() int64 { return s.drifts.Load() }

// Works returns how many works the hub last listed for the cluster.
func (s *Stats) Works() int64 { return s.works.Load() }

func get(c *[2]atomic.Int64, result string) int64 {
	for i, r := range results {
		if r == result {
			return c[i].Load()
		}
	}
	return 0
}

// TelemetryType is the type of the extension that publishes Stats in the
// Collector's own telemetry.
var TelemetryType = component.MustNewType("fleetpulse_work")

const scopeName = "github.com/fleetpulse/fleetpulse/agent/work"

// NewTelemetryFactory returns the factory of the extension that publishes s:
// fleetpulse_agent_work_applies_total{result} (manifests applied),
// fleetpulse_agent_work_drifts_total (objects changed on the cluster and put
// back), fleetpulse_agent_work_hub_requests_total{request,result} (lists
// of works and status reports) and fleetpulse_agent_work_works (works the
// hub lists for the cluster). It takes no settings.
func NewTelemetryFactory(s *Stats) extension.Factory {
	return selftelemetry.NewFactory(TelemetryType, scopeName, s.register)
}

func (s *Stats) register(m metric.Meter) (metric.Registration, error) {
	applies, err1 := m.Int64ObservableCounter("fleetpulse.agent.work.applies", metric.WithUnit("{apply}"),
		metric.WithDescription("Manifests of works the agent applied to its cluster, by result"))
	drifts, err2 := m.Int64ObservableCounter("fleetpulse.agent.work.drifts", metric.WithUnit("{drift}"),
		metric.WithDescription("Objects of works changed on the cluster that the agent put back"))
	requests, err3 := m.Int64ObservableCounter("fleetpulse.agent.work.hub.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Work requests to the hub (list, status), by result"))
	works, err4 := m.Int64ObservableGauge("fleetpulse.agent.work.works", metric.WithUnit("{work}"),
		metric.WithDescription("Works the hub lists for this cluster"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for i, r := range results {
			o.ObserveInt64(applies, s.applies[i].Load(), metric.WithAttributes(attribute.String("result", r)))
			o.ObserveInt64(requests, s.lists[i].Load(), metric.WithAttributes(attribute.String("request", "list"), attribute.String("result", r)))
			o.ObserveInt64(requests, s.reports[i].Load(), metric.WithAttributes(attribute.String("request", "status"), attribute.String("result", r)))
		}
		o.ObserveInt64(drifts, s.drifts.Load())
		o.ObserveInt64(works, s.works.Load())
		return nil
	}, applies, drifts, requests, works)
}
