package policy_test

import (
	"context"
	"slices"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// TestComplianceMetrics: a policy names its standards as one series each,
// and the time it spent non-compliant is observed once it is fixed — by
// hand here, as an inform policy is.
func TestComplianceMetrics(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "metrics-team", nil)
	p := newPolicy("audited", fleetv1.RemediationInform, tmpl(t, fleetv1.MustHave, `apiVersion: v1
kind: ConfigMap
metadata: {name: owner, namespace: metrics-team}
data: {team: a}`))
	p.Annotations = map[string]string{fleetv1.AnnotationStandards: "NIST SP 800-53, CIS ,NIST SP 800-53,"}
	e.source.Set(p)
	e.waitStatus(t, "audited", is(fleetv1.NonCompliant, 1))

	if got := e.standards(t, "audited"); !slices.Equal(got, []string{"CIS", "NIST SP 800-53"}) {
		t.Errorf("standards series %q, want CIS and NIST SP 800-53", got)
	}
	if n, _ := e.remediation(t, "audited"); n != 0 {
		t.Errorf("%d remediations observed before the policy was compliant", n)
	}

	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: owner, namespace: metrics-team}\ndata: {team: a}")
	st := e.waitStatus(t, "audited", is(fleetv1.Compliant, 1))
	n, sum := e.remediation(t, "audited")
	// History times are to the second: the time non-compliant is at
	// least 0 and at most the span between the two entries plus one.
	span := st.History[0].Time.Sub(st.History[1].Time.Time).Seconds()
	if n != 1 || sum < 0 || sum > span+1 {
		t.Errorf("remediation histogram: %d observations summing to %.3fs, want 1 of at most %.0fs", n, sum, span+1)
	}
}

// standards lists the standards series of a policy, sorted.
func (e *env) standards(t *testing.T, name string) []string {
	t.Helper()
	var out []string
	for _, m := range e.collect(t) {
		if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == "fleetpulse.policy.standard" {
			for _, p := range g.DataPoints {
				if v, _ := p.Attributes.Value("policy"); v.AsString() == name && p.Value == 1 {
					s, _ := p.Attributes.Value("standard")
					out = append(out, s.AsString())
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// remediation reads the remediation histogram of a policy.
func (e *env) remediation(t *testing.T, name string) (count uint64, sum float64) {
	t.Helper()
	for _, m := range e.collect(t) {
		if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "fleetpulse.policy.remediation.duration" {
			for _, p := range h.DataPoints {
				if v, _ := p.Attributes.Value("policy"); v.AsString() == name {
					count, sum = count+p.Count, sum+p.Sum
				}
			}
		}
	}
	return count, sum
}

func (e *env) collect(t *testing.T) []metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := e.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var out []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		out = append(out, sm.Metrics...)
	}
	return out
}
