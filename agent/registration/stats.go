package registration

import "sync/atomic"

// Results counted by Stats, the values of the result attribute.
// HeartbeatResults, RenewalResults and RegistrationResults list them by
// call.
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
// publishes them (the fleetpulse_registration extension does).
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

// The results each call can end with.
var (
	HeartbeatResults    = []string{ResultOK, ResultError, ResultUnauthorized, ResultDeregistered}
	RenewalResults      = HeartbeatResults
	RegistrationResults = []string{ResultAccepted, ResultPending, ResultError, ResultRefused}
)

// NewStats returns zero counts.
func NewStats() *Stats {
	return &Stats{
		heartbeats:    newCounts(HeartbeatResults...),
		renewals:      newCounts(RenewalResults...),
		registrations: newCounts(RegistrationResults...),
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
