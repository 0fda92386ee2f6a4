package registration

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
)

// errDeregistered marks refusals of a certificate whose cluster is gone.
var errDeregistered = errors.New("deregistered")

// Authenticate is the gateway's authenticator with registration: the
// certificate must be one registration issued (it names the registration,
// the ManagedCluster's UID), and registration must still stand behind it
// (see registered).
func (s *Service) Authenticate(ctx context.Context, cert *x509.Certificate) (gateway.Identity, error) {
	id := gateway.Identity{Cluster: cert.Subject.CommonName, UID: ClusterUID(cert)}
	if id.UID == "" {
		return gateway.Identity{}, gateway.Unauthorized(fmt.Errorf("client certificate %q was not issued by registration: register with a bootstrap token", id.Cluster))
	}
	if _, err := s.registered(ctx, id); err != nil {
		return gateway.Identity{}, err
	}
	return id, nil
}

// registered returns the ManagedCluster of id's registration, from the
// cache, if it exists, is the one the certificate was issued for (same
// UID), is accepted and is not being deleted; else the gateway's refusal,
// flagged as a deregistration so that the agent stops rather than retries.
func (s *Service) registered(ctx context.Context, id gateway.Identity) (*fleetv1.ManagedCluster, error) {
	mc := &fleetv1.ManagedCluster{}
	err := s.cache.Get(ctx, client.ObjectKey{Name: id.Cluster}, mc)
	switch {
	case apierrors.IsNotFound(err):
		return nil, gateway.Deregistered(fmt.Errorf("%w: cluster %q is not registered with this hub", errDeregistered, id.Cluster))
	case err != nil:
		return nil, gateway.Unavailable(fmt.Errorf("look up cluster %q: %w", id.Cluster, err))
	case mc.UID != id.UID:
		return nil, gateway.Deregistered(fmt.Errorf("%w: the certificate belongs to an earlier registration of cluster %q, since deleted", errDeregistered, id.Cluster))
	case mc.DeletionTimestamp != nil:
		return nil, gateway.Deregistered(fmt.Errorf("%w: cluster %q is being deregistered", errDeregistered, id.Cluster))
	case !mc.Spec.Accepted:
		return nil, gateway.Deregistered(fmt.Errorf("%w: cluster %q is no longer accepted by the hub", errDeregistered, id.Cluster))
	}
	return mc, nil
}

// caller is the ManagedCluster of the request's caller, whom the gateway
// authenticated: looked up again, so that a deregistration since is seen.
// It answers the request itself when it returns false.
func (s *Service) caller(w http.ResponseWriter, r *http.Request, endpoint string) (*fleetv1.ManagedCluster, bool) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		s.count(endpoint, "refused")
		return nil, false
	}
	mc, err := s.registered(r.Context(), id)
	if err != nil {
		s.count(endpoint, "refused")
		gateway.Refuse(w, err)
		return nil, false
	}
	return mc, true
}
