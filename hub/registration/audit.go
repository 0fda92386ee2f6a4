package registration

import (
	"context"
	"log/slog"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Audit events and outcomes: the label values of
// fleetpulse_hub_registration_audit_total, a closed set.
const (
	eventToken        = "token"         // a bootstrap token was refused
	eventRateLimit    = "rate_limit"    // a source went over its limit
	eventInvalid      = "invalid"       // a malformed request with a valid token
	eventReservedName = "reserved_name" // a name the hub keeps for itself
	eventRegister     = "register"      // a new cluster
	eventReregister   = "reregister"    // an existing cluster, with its key or its certificate
	eventConflict     = "conflict"      // the name belongs to a cluster with another id
	eventScope        = "scope"         // the token's cluster set is not the cluster's
	eventRekey        = "rekey"         // another key: requested, rotated or approved

	outcomeRefused     = "refused"
	outcomeRateLimited = "rate_limited"
	outcomeAccepted    = "accepted" // created accepted, with a certificate
	outcomePending     = "pending"  // waits for acceptance or for a re-key approval
	outcomeIssued      = "issued"
	outcomeRequested   = "requested" // a re-key request recorded
	outcomeRotated     = "rotated"   // the cluster's key replaced over mutual TLS
	outcomeApproved    = "approved"
)

// audit is one registration decision: a log line "registration audit"
// and a count. It never holds a token's secret.
type audit struct {
	event, outcome string
	cluster        string
	tokenID        string
	source         string
	keySHA256      string
	reason         string
}

func newAuditCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	return promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "fleetpulse_hub_registration_audit_total",
		Help: "Registration decisions by event (token, rate_limit, invalid, reserved_name, register, reregister, conflict, scope, rekey) and outcome.",
	}, []string{"event", "outcome"})
}

// record logs and counts a; level is Info for what changes state or is
// refused, Debug for polls that change nothing.
func (s *Service) record(ctx context.Context, level slog.Level, a audit) {
	s.audits.WithLabelValues(a.event, a.outcome).Inc()
	attrs := []any{"event", a.event, "outcome", a.outcome, "cluster", a.cluster, "token_id", a.tokenID, "source", a.source}
	if a.keySHA256 != "" {
		attrs = append(attrs, "key_sha256", a.keySHA256)
	}
	if a.reason != "" {
		attrs = append(attrs, "reason", a.reason)
	}
	s.logger.Log(ctx, level, "registration audit", attrs...)
}

var presentedID = regexp.MustCompile(`^([a-z0-9]{6})\.`)

// tokenIDOf is the id half of a presented token when it has the token's
// form; the secret half is never kept.
func tokenIDOf(presented string) string {
	if m := presentedID.FindStringSubmatch(presented); m != nil {
		return m[1]
	}
	return ""
}
