package policy

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

const scopeName = "github.com/fleetpulse/fleetpulse/agent/policy"

// Metric names, as OpenTelemetry writes them; the Collector's Prometheus
// exposition (and the hub) sees fleetpulse_policy_compliant,
// fleetpulse_policy_transitions_total and
// fleetpulse_policy_evaluation_duration_seconds.
const (
	metricCompliant   = "fleetpulse.policy.compliant"
	metricTransitions = "fleetpulse.policy.transitions"
	metricDuration    = "fleetpulse.policy.evaluation.duration"
)

// telemetry holds the engine's instruments.
type telemetry struct {
	meter       metric.Meter
	compliant   metric.Int64ObservableGauge
	transitions metric.Int64Counter
	duration    metric.Float64Histogram
}

func newTelemetry(mp metric.MeterProvider) (*telemetry, error) {
	m := mp.Meter(scopeName)
	compliant, err1 := m.Int64ObservableGauge(metricCompliant,
		metric.WithDescription("Each policy's verdict on this cluster: 1 compliant, 0 non-compliant, -1 pending"))
	transitions, err2 := m.Int64Counter(metricTransitions, metric.WithUnit("{transition}"),
		metric.WithDescription("Changes of a policy's verdict, by the verdict changed to"))
	duration, err3 := m.Float64Histogram(metricDuration, metric.WithUnit("s"),
		metric.WithDescription("Time to evaluate (and enforce) one policy"),
		metric.WithExplicitBucketBoundaries(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return &telemetry{meter: m, compliant: compliant, transitions: transitions, duration: duration}, nil
}

// verdict is one policy's gauge reading.
type verdict struct {
	policy, namespace, severity string
	state                       fleetv1.ComplianceState
}

// register starts observing the verdicts that read returns; policies that
// leave the set leave the gauge with them.
func (t *telemetry) register(read func() []verdict) (metric.Registration, error) {
	return t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, v := range read() {
			o.ObserveInt64(t.compliant, gaugeValue(v.state), metric.WithAttributes(
				attribute.String("policy", v.policy), attribute.String("namespace", v.namespace), attribute.String("severity", v.severity)))
		}
		return nil
	}, t.compliant)
}

func gaugeValue(s fleetv1.ComplianceState) int64 {
	switch s {
	case fleetv1.Compliant:
		return 1
	case fleetv1.NonCompliant:
		return 0
	}
	return -1
}

func (t *telemetry) transition(ctx context.Context, p *fleetv1.Policy, to fleetv1.ComplianceState) {
	ns, name := rootOf(p)
	t.transitions.Add(ctx, 1, metric.WithAttributes(attribute.String("policy", name),
		attribute.String("namespace", ns), attribute.String("compliant", string(to))))
}
