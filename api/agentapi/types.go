// Package agentapi is the wire format between agents and the hub's gateway
// (the agents' mutual-TLS port): registration with a bootstrap token,
// heartbeats and certificate renewal, and work distribution (ManifestWorks,
// see work.go). Bodies are JSON; errors are plain text with a 4xx or 5xx
// status.
//
//	GET  /api/v1/registration/ca  the CA that signs the hub's agent-port certificate
//	                              and agents' client certificates (PEM); unauthenticated,
//	                              the agent checks it against the pinned hash
//	POST /api/v1/registration     Authorization: Bearer <bootstrap token>; RegisterRequest →
//	                              RegisterResponse (200; poll while Accepted is false)
//	POST /api/v1/heartbeat        client certificate; HeartbeatRequest → HeartbeatResponse
//	POST /api/v1/certificate      client certificate; RenewRequest → RenewResponse
//
// Statuses: 400 a malformed request (the message names the field), 401 no
// or an invalid, expired or revoked credential, 403 a credential of a
// cluster that was deregistered or is no longer accepted (always with the
// header X-Fleetpulse-Deregistered: true; the agent stops and drops its
// credentials), 409 the name belongs to another cluster or to a cluster set
// the token may not register (final), 429 the source made too many refused
// registration calls, 503 the hub is not ready or the name is being
// registered or deregistered right now (429 and 503: retry after
// Retry-After). A registration whose key differs from the one the cluster
// registered with is answered as pending until an administrator approves
// the new key. Every answer carries X-Request-Id: the caller's, when it is
// a token of up to 128 letters, digits and ".:_-", else one the hub made;
// the hub's log lines about the request name it.
package agentapi

import "time"

// Paths of the gateway.
const (
	PathCA           = "/api/v1/registration/ca"
	PathRegister     = "/api/v1/registration"
	PathHeartbeat    = "/api/v1/heartbeat"
	PathRenew        = "/api/v1/certificate"
	ClaimClusterID   = "id.k8s.io"
	ClaimPlatform    = "platform.fleetpulse.io"
	HeaderDeregister = "X-Fleetpulse-Deregistered"
)

// Claim is one fact an agent states about its cluster.
type Claim struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// RegisterRequest asks the hub to register a cluster under ClusterName. The
// id.k8s.io claim (the UID of the cluster's kube-system namespace) tells a
// re-registering cluster from a second cluster claiming the same name.
type RegisterRequest struct {
	ClusterName  string  `json:"clusterName"`
	CSR          string  `json:"csr"` // PEM CERTIFICATE REQUEST; its key signs the agent's calls from then on
	Claims       []Claim `json:"claims,omitempty"`
	AgentVersion string  `json:"agentVersion,omitempty"`
}

// RegisterResponse tells the agent whether it is accepted. Until it is, the
// agent repeats the same request after RetryAfterSeconds.
type RegisterResponse struct {
	ClusterName            string    `json:"clusterName"`
	Accepted               bool      `json:"accepted"`
	Message                string    `json:"message,omitempty"`
	RetryAfterSeconds      int       `json:"retryAfterSeconds,omitempty"`
	Certificate            string    `json:"certificate,omitempty"` // PEM, when accepted
	CABundle               string    `json:"caBundle,omitempty"`    // PEM, when accepted
	NotAfter               time.Time `json:"notAfter,omitzero"`
	HeartbeatPeriodSeconds int       `json:"heartbeatPeriodSeconds,omitempty"`
}

// HeartbeatRequest is sent every heartbeat period over mutual TLS.
type HeartbeatRequest struct {
	AgentVersion string  `json:"agentVersion,omitempty"`
	Claims       []Claim `json:"claims,omitempty"`
	// ClusterAPIReachable is false when the agent cannot reach its own
	// cluster's apiserver; ClusterAPIError then says why.
	ClusterAPIReachable bool   `json:"clusterAPIReachable"`
	ClusterAPIError     string `json:"clusterAPIError,omitempty"`
}

// HeartbeatResponse carries the period the hub wants.
type HeartbeatResponse struct {
	HeartbeatPeriodSeconds int `json:"heartbeatPeriodSeconds"`
}

// RenewRequest asks for a new certificate for a new key, over mutual TLS
// with the current one.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse holds the new certificate.
type RenewResponse struct {
	Certificate string    `json:"certificate"`
	CABundle    string    `json:"caBundle"`
	NotAfter    time.Time `json:"notAfter"`
}
