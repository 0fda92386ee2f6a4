package gateway

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// Identity is who calls: the cluster a request's client certificate was
// issued to, as an Authenticator proved it.
type Identity struct {
	// Cluster is the cluster's name, the certificate's common name.
	Cluster string
	// UID is the registration (the ManagedCluster's UID) the certificate
	// was issued for; empty for a static certificate.
	UID types.UID
}

type identityKey struct{}

// NewContext returns ctx carrying id, as the gateway hands it to handlers.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityFrom returns the caller the gateway authenticated, if the route
// is authenticated.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Caller is the request's Identity. A handler on an authenticated route
// always has one; without one (the route was served outside the gateway's
// authentication) Caller answers 401 itself and reports false.
func Caller(w http.ResponseWriter, r *http.Request) (Identity, bool) {
	id, ok := IdentityFrom(r.Context())
	if !ok {
		Refuse(w, errNoCertificate)
	}
	return id, ok
}

// An Authenticator proves which cluster a client certificate, verified
// against the hub's client CA, speaks for. Its refusals are Refusals
// (Unauthorized, Forbidden, Deregistered, Unavailable); any other error
// answers 503.
type Authenticator interface {
	Authenticate(ctx context.Context, cert *x509.Certificate) (Identity, error)
}

// AuthenticatorFunc is a function as an Authenticator.
type AuthenticatorFunc func(ctx context.Context, cert *x509.Certificate) (Identity, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, cert *x509.Certificate) (Identity, error) {
	return f(ctx, cert)
}

// CommonName authenticates static certificates: the common name is the
// cluster's name, which must be a DNS label (a cluster's name is its
// namespace on the hub). It is the hub's authenticator without
// registration.
var CommonName = AuthenticatorFunc(func(_ context.Context, cert *x509.Certificate) (Identity, error) {
	cn := cert.Subject.CommonName
	if msgs := validation.IsDNS1123Label(cn); len(msgs) > 0 {
		return Identity{}, Forbidden(fmt.Errorf("client certificate names %q, which is not a cluster name: %s", cn, strings.Join(msgs, "; ")))
	}
	return Identity{Cluster: cn}, nil
})

// Refusal is an answer to a caller the gateway does not let through.
type Refusal struct {
	Status int
	// Deregistered flags the answer with agentapi.HeaderDeregister: the
	// cluster is gone, and its agent stops rather than retries.
	Deregistered bool
	Err          error
}

func (r *Refusal) Error() string { return r.Err.Error() }
func (r *Refusal) Unwrap() error { return r.Err }

// Unauthorized refuses a caller without a credential the hub accepts (401).
func Unauthorized(err error) error {
	return &Refusal{Status: http.StatusUnauthorized, Err: err}
}

// Forbidden refuses a credential that names no cluster (403).
func Forbidden(err error) error { return &Refusal{Status: http.StatusForbidden, Err: err} }

// Deregistered refuses the credential of a cluster that was deregistered
// or is no longer accepted (403, flagged).
func Deregistered(err error) error {
	return &Refusal{Status: http.StatusForbidden, Deregistered: true, Err: err}
}

// Unavailable refuses for now, when the hub cannot decide (503).
func Unavailable(err error) error {
	return &Refusal{Status: http.StatusServiceUnavailable, Err: err}
}

// Refuse writes err as the answer: a Refusal's status (flagged when
// deregistered), or 503 for any other error.
func Refuse(w http.ResponseWriter, err error) {
	status := http.StatusServiceUnavailable
	if ref := (*Refusal)(nil); errors.As(err, &ref) {
		status = ref.Status
		if ref.Deregistered {
			w.Header().Set(agentapi.HeaderDeregister, "true")
		}
	}
	http.Error(w, err.Error(), status)
}

// errNoCertificate answers a call without a verified client certificate.
var errNoCertificate = Unauthorized(errors.New("a client certificate signed by the hub's CA is required"))

// authenticate proves the caller of r.
func (g *Gateway) authenticate(r *http.Request) (Identity, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return Identity{}, errNoCertificate
	}
	if g.viaReplicaCA(r) {
		return Identity{}, errReplicaAsAgent
	}
	return g.auth.Authenticate(r.Context(), r.TLS.VerifiedChains[0][0])
}
