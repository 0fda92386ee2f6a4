package registration

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// errDeregistered marks refusals of a certificate whose cluster is gone.
var errDeregistered = errors.New("deregistered")

// identify names the cluster a request's client certificate was issued to
// and checks that registration still stands behind it: the ManagedCluster
// exists, is the one the certificate was issued for (same UID), is accepted
// and is not being deleted.
func (s *Service) identify(ctx context.Context, r *http.Request) (*fleetv1.ManagedCluster, int, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil, http.StatusUnauthorized, errors.New("a client certificate signed by the hub's CA is required")
	}
	cert := r.TLS.VerifiedChains[0][0]
	name, uid := cert.Subject.CommonName, ClusterUID(cert)
	if uid == "" {
		return nil, http.StatusUnauthorized, fmt.Errorf("client certificate %q was not issued by registration: register with a bootstrap token", name)
	}
	mc := &fleetv1.ManagedCluster{}
	err := s.cache.Get(ctx, client.ObjectKey{Name: name}, mc)
	switch {
	case apierrors.IsNotFound(err):
		return nil, http.StatusForbidden, fmt.Errorf("%w: cluster %q is not registered with this hub", errDeregistered, name)
	case err != nil:
		return nil, http.StatusServiceUnavailable, fmt.Errorf("look up cluster %q: %w", name, err)
	case mc.UID != uid:
		return nil, http.StatusForbidden, fmt.Errorf("%w: the certificate belongs to an earlier registration of cluster %q, since deleted", errDeregistered, name)
	case mc.DeletionTimestamp != nil:
		return nil, http.StatusForbidden, fmt.Errorf("%w: cluster %q is being deregistered", errDeregistered, name)
	case !mc.Spec.Accepted:
		return nil, http.StatusForbidden, fmt.Errorf("%w: cluster %q is no longer accepted by the hub", errDeregistered, name)
	}
	return mc, 0, nil
}

// Identify is identify for the telemetry handlers: it names the cluster.
func (s *Service) Identify(r *http.Request) (string, int, error) {
	mc, status, err := s.identify(r.Context(), r)
	if err != nil {
		return "", status, err
	}
	return mc.Name, 0, nil
}

// refuse writes an identification failure, flagging deregistration so the
// agent knows to stop rather than retry.
func refuse(w http.ResponseWriter, status int, err error) {
	if errors.Is(err, errDeregistered) {
		w.Header().Set(agentapi.HeaderDeregister, "true")
	}
	http.Error(w, err.Error(), status)
}

// Identity is what the gateway's other endpoints (work sync) use to name the
// calling cluster: the same checks as heartbeats, with the status to refuse
// with; the refusal writer flags deregistration.
func (s *Service) Identity(w http.ResponseWriter, r *http.Request) (cluster string, ok bool) {
	mc, status, err := s.identify(r.Context(), r)
	if err != nil {
		refuse(w, status, err)
		return "", false
	}
	return mc.Name, true
}
