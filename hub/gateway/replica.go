package gateway

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// ClusterPathValue is the path wildcard of a Replica route that names the
// cluster a replicated request writes for.
const ClusterPathValue = "cluster"

// Replica authenticates callers as hub replicas rather than agents: a
// client certificate verified through one of Options.ReplicaCAs. The
// route's pattern names the cluster ({cluster}); it is served only for a
// cluster this replica owns (others are refused 421, for the sender to
// retry once the ring agrees) and is never redirected. The route's handler
// finds the cluster as its Identity, and the cluster's request rate
// applies as on an agent's route when it takes RateLimited too.
func Replica() RouteOption { return func(r *route) { r.replica = true } }

// LoadReplicaCAs reads the certificates of a PEM file of replication CAs,
// for Options.ReplicaCAs and the agents' port's client CAs.
func LoadReplicaCAs(file string) ([]*x509.Certificate, error) {
	cas, err := loadCerts(file)
	if err != nil {
		return nil, fmt.Errorf("load replication client CA: %w", err)
	}
	return cas, nil
}

// errNotAReplica refuses a certificate that no replication CA issued on a
// replica's route.
var errNotAReplica = Forbidden(errors.New("replicated writes take a hub replica's client certificate (--replication.tls-client-ca-file); this one is not"))

// errReplicaAsAgent refuses a replica's certificate on an agent's route: a
// replica speaks for no cluster of its own.
var errReplicaAsAgent = Forbidden(errors.New("a hub replica's certificate does not speak for a cluster"))

// viaReplicaCA reports whether a verified chain of r's client certificate
// passes through one of the replication CAs.
func (g *Gateway) viaReplicaCA(r *http.Request) bool {
	if len(g.replicaCAs) == 0 || r.TLS == nil {
		return false
	}
	for _, chain := range r.TLS.VerifiedChains {
		for _, c := range chain[min(1, len(chain)):] {
			for _, ca := range g.replicaCAs {
				if bytes.Equal(c.Raw, ca.Raw) {
					return true
				}
			}
		}
	}
	return false
}

// replicaIdentity proves r comes from a hub replica and returns the
// cluster it writes for, which this replica must own.
func (g *Gateway) replicaIdentity(r *http.Request) (Identity, error) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		return Identity{}, errNoCertificate
	}
	if !g.viaReplicaCA(r) {
		return Identity{}, errNotAReplica
	}
	cluster := r.PathValue(ClusterPathValue)
	if msgs := validation.IsDNS1123Label(cluster); len(msgs) > 0 {
		return Identity{}, &Refusal{Status: http.StatusBadRequest,
			Err: fmt.Errorf("replicated write names %q, which is not a cluster name: %s", cluster, strings.Join(msgs, "; "))}
	}
	if g.owner != nil {
		owner, err := g.owner(cluster)
		switch {
		case err != nil:
			return Identity{}, Unavailable(fmt.Errorf("the owners of cluster %q are unknown now: %w", cluster, err))
		case owner != "":
			return Identity{}, &Refusal{Status: http.StatusMisdirectedRequest,
				Err: fmt.Errorf("this replica does not own cluster %q; %s does", cluster, owner)}
		}
	}
	return Identity{Cluster: cluster}, nil
}
