package registration

import (
	"errors"
	"fmt"
	"net/http"
)

// Errors that end the agent, for errors.Is.
var (
	// ErrTokenRefused: the hub refused the bootstrap token (401 to a
	// registration: malformed, unknown, expired or revoked).
	ErrTokenRefused = errors.New("the hub refused the bootstrap token")
	// ErrNameTaken: the cluster name is registered to another cluster (409).
	ErrNameTaken = errors.New("the cluster name is registered to another cluster")
	// ErrCredentialsRefused: the hub refuses the agent's certificate (401)
	// and there is no bootstrap token to join again with, or it refuses one
	// it has just issued.
	ErrCredentialsRefused = errors.New("the hub refuses the agent's client certificate")
	// ErrDeregistered: the hub deregistered the cluster (403); see
	// DeregisteredError.
	ErrDeregistered = errors.New("cluster deregistered by the hub")
)

// DeregisteredError says the hub deregistered the cluster. The agent has
// removed its credentials and must stop.
type DeregisteredError struct {
	Cluster string
	// Message is the hub's explanation.
	Message string
}

func (e *DeregisteredError) Error() string {
	return fmt.Sprintf("cluster %s was deregistered by the hub: %s", e.Cluster, e.Message)
}

// Is makes errors.Is(err, ErrDeregistered) true.
func (e *DeregisteredError) Is(target error) bool { return target == ErrDeregistered }

// statusCode returns the hub's status code in err, 0 when there is none.
func statusCode(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// deregistration returns the StatusError when err says the cluster is
// deregistered: 403, or any refusal carrying agentapi.HeaderDeregister.
func deregistration(err error) (*StatusError, bool) {
	var se *StatusError
	if errors.As(err, &se) && (se.Code == http.StatusForbidden || se.Deregistered) {
		return se, true
	}
	return nil, false
}
