package registration

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
	ResultOK           = "ok"           // heartbeat answered, certificate renewed
	ResultError        = "error"        // transport error or temporary refusal; retried
	ResultUnauthorized = "unauthorized" // 401: the hub refuses the credentials
	ResultDeregistered = "deregistered" // 403: the cluster was deregistered
	ResultAccepted     = "accepted"     // registration: certificate issued
	ResultPending      = "pending"      // registration: waiting for acceptance
	ResultRefused      = "refused"      // registration: refused for good (401, 409, …)
)

// Stats counts the registration's calls for the agent's own telemetry.
// Counts are kept in atomics, so an Agent counts whether or not a Collector
// publishes them (see NewTelemetryFactory).
type Stats struct {
	heartbeats, renewals, registrations counts
	expiry                              atomic.Int64 // Unix seconds; 0 before any certificate
}

type counts map[string]*atomic.Int64

func newCounts(results ...string) counts {
	c := counts{}
	for _, r := range results {
		c[r] = new(atomic.Int64)
	}
	return c
}

func (c counts) inc(result string) {
	if n, ok := c[result]; ok {
		n.Add(1)
	}
}

// NewStats returns zero counts.
func NewStats() *Stats {
	return &Stats{
		heartbeats:    newCounts(ResultOK, ResultError, ResultUnauthorized, ResultDeregistered),
		renewals:      newCounts(ResultOK, ResultError, ResultUnauthorized, ResultDeregistered),
		registrations: newCounts(ResultAccepted, ResultPending, ResultError, ResultRefused),
	}
}

// Heartbeats returns how many heartbeats ended with result.
func (s *Stats) Heartbeats(result string) int64 { return s.heartbeats.get(result) }

// Renewals returns how many renewals ended with result.
func (s *Stats) Renewals(result string) int64 { return s.renewals.get(result) }

// Registrations returns how many registration calls ended with result.
func (s *Stats) Registrations(result string) int64 { return s.registrations.get(result) }

// CertificateExpiry returns the current certificate's NotAfter in Unix
// seconds, 0 before there is one.
func (s *Stats) CertificateExpiry() int64 { return s.expiry.Load() }

func (c counts) get(result string) int64 {
	if n, ok := c[result]; ok {
		return n.Load()
	}
	return 0
}

// TelemetryType is the type of the extension that publishes Stats in the
// Collector's own telemetry (served on the agent's metrics address and
// pushed to the hub with the rest of the agent's metrics).
var TelemetryType = component.MustNewType("fleetpulse_registration")

const scopeName = "github.com/fleetpulse/fleetpulse/agent/registration"

// NewTelemetryFactory returns the factory of the extension that publishes s:
// fleetpulse_agent_heartbeats_total{result},
// fleetpulse_agent_certificate_renewals_total{result},
// fleetpulse_agent_registrations_total{result} and
// fleetpulse_agent_certificate_expiry_timestamp_seconds. It takes no
// settings.
func NewTelemetryFactory(s *Stats) extension.Factory {
	return selftelemetry.NewFactory(TelemetryType, scopeName, s.register)
}

func (s *Stats) register(m metric.Meter) (metric.Registration, error) {
	hb, err1 := m.Int64ObservableCounter("fleetpulse.agent.heartbeats", metric.WithUnit("{heartbeat}"),
		metric.WithDescription("Heartbeats the agent sent to the hub, by result"))
	rn, err2 := m.Int64ObservableCounter("fleetpulse.agent.certificate.renewals", metric.WithUnit("{renewal}"),
		metric.WithDescription("Client certificate renewals the agent asked the hub for, by result"))
	rg, err3 := m.Int64ObservableCounter("fleetpulse.agent.registrations", metric.WithUnit("{request}"),
		metric.WithDescription("Registration requests the agent sent to the hub, by result"))
	exp, err4 := m.Int64ObservableGauge("fleetpulse.agent.certificate.expiry_timestamp", metric.WithUnit("s"),
		metric.WithDescription("When the agent's client certificate expires (Unix time)"))
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for inst, c := range map[metric.Int64Observable]counts{hb: s.heartbeats, rn: s.renewals, rg: s.registrations} {
			for result, n := range c {
				o.ObserveInt64(inst, n.Load(), metric.WithAttributes(attribute.String("result", result)))
			}
		}
		if e := s.expiry.Load(); e > 0 {
			o.ObserveInt64(exp, e)
		}
		return nil
	}, hb, rn, rg, exp)
}
