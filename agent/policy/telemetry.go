package policy

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

const scopeName = "github.com/fleetpulse/fleetpulse/agent/policy"

// Metric names, as OpenTelemetry writes them; the Collector's Prometheus
// exposition (and the hub) sees fleetpulse_policy_compliant,
// fleetpulse_policy_standard, fleetpulse_policy_transitions_total,
// fleetpulse_policy_evaluation_duration_seconds and
// fleetpulse_policy_remediation_duration_seconds.
const (
	metricCompliant   = "fleetpulse.policy.compliant"
	metricStandard    = "fleetpulse.policy.standard"
	metricTransitions = "fleetpulse.policy.transitions"
	metricDuration    = "fleetpulse.policy.evaluation.duration"
	metricRemediation = "fleetpulse.policy.remediation.duration"
)

// telemetry holds the engine's instruments.
type telemetry struct {
	meter       metric.Meter
	compliant   metric.Int64ObservableGauge
	standard    metric.Int64ObservableGauge
	transitions metric.Int64Counter
	duration    metric.Float64Histogram
	remediation metric.Float64Histogram
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
	// The standards gauge is an info series: joined on policy and
	// namespace, it groups the compliance gauge by standard.
	standard, err4 := m.Int64ObservableGauge(metricStandard,
		metric.WithDescription("1 for each standard a policy names in its annotation "+fleetv1.AnnotationStandards))
	// Minutes to days: a drift enforced back takes one evaluation, one
	// fixed by hand takes a person.
	remediation, err5 := m.Float64Histogram(metricRemediation, metric.WithUnit("s"),
		metric.WithDescription("Time a policy was non-compliant, observed when it turns compliant again"),
		metric.WithExplicitBucketBoundaries(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 3*3600, 12*3600, 24*3600, 7*24*3600))
	if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
		return nil, err
	}
	return &telemetry{meter: m, compliant: compliant, standard: standard, transitions: transitions, duration: duration,
		remediation: remediation}, nil
}

// verdict is one policy's gauge reading.
type verdict struct {
	policy, namespace, severity string
	standards                   []string
	state                       fleetv1.ComplianceState
}

// register starts observing the verdicts that read returns; policies that
// leave the set leave the gauges with them.
func (t *telemetry) register(read func() []verdict) (metric.Registration, error) {
	return t.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for _, v := range read() {
			o.ObserveInt64(t.compliant, gaugeValue(v.state), metric.WithAttributes(
				attribute.String("policy", v.policy), attribute.String("namespace", v.namespace), attribute.String("severity", v.severity)))
			for _, s := range v.standards {
				o.ObserveInt64(t.standard, 1, metric.WithAttributes(
					attribute.String("policy", v.policy), attribute.String("namespace", v.namespace), attribute.String("standard", s)))
			}
		}
		return nil
	}, t.compliant, t.standard)
}

// standardsOf lists the standards a policy names: its annotation, comma
// separated, each trimmed, blanks and repeats dropped.
func standardsOf(p *fleetv1.Policy) []string {
	var out []string
	for s := range strings.SplitSeq(p.Annotations[fleetv1.AnnotationStandards], ",") {
		if s = strings.TrimSpace(s); s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
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

// remediated records how long a policy was non-compliant when it turns
// compliant: since the history's newest entry, the turn to NonCompliant
// (kept by the hub across agent restarts, to the second).
func (t *telemetry) remediated(ctx context.Context, p *fleetv1.Policy, prev *fleetv1.PolicyStatus, to fleetv1.ComplianceState, now time.Time) {
	if to != fleetv1.Compliant || prev.Compliant != fleetv1.NonCompliant || len(prev.History) == 0 ||
		prev.History[0].Compliant != fleetv1.NonCompliant {
		return
	}
	ns, name := rootOf(p)
	t.remediation.Record(ctx, max(now.Sub(prev.History[0].Time.Time), 0).Seconds(), metric.WithAttributes(
		attribute.String("policy", name), attribute.String("namespace", ns)))
}
