package hub

import (
	"fmt"
	"net"
	"os"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/fleetpulse/fleetpulse/hub/ring"
)

// Instance is one hub replica: its name and the addresses of its agents'
// gateway and its StoreAPI. The ring's, so that a ring is a Membership as
// it is.
type Instance = ring.Instance

// Membership is the set of hub replicas and which of them owns a cluster.
// A replica reads its peers' StoreAPIs to answer fleet-wide queries, and
// writes rule results and sends alerts only for the clusters it owns. A
// ring implements it; without one, StaticMembership splits the clusters
// over a fixed list of replicas.
type Membership interface {
	// Self is this replica.
	Self() Instance
	// Peers are the replicas, this one included or not.
	Peers() ([]Instance, error)
	// Owns tells whether this replica evaluates the cluster's rules,
	// writes their results and sends its alerts: one replica at a time, or
	// each of its owners where several replicate it (Alertmanager and the
	// readers' deduplication make one of their copies).
	Owns(cluster string) bool
}

// StaticMembership is a fixed list of replicas, each named by its StoreAPI
// address, that every replica is given the same way (--query.peer), its
// own address included or not: a cluster is owned by the replica whose
// address ranks first for it by rendezvous hashing, which every replica
// decides alike and which moves only the clusters of a replica that is
// added or removed.
type StaticMembership struct {
	self  Instance
	peers []Instance // without self
	ids   []string   // every replica's, self's included
}

// NewStaticMembership builds the membership of the replica at self (its
// StoreAPI address as the others list it) among peers.
func NewStaticMembership(self string, peers []string) *StaticMembership {
	m := &StaticMembership{self: Instance{ID: self, GRPCAddr: self}, ids: []string{self}}
	for _, p := range peers {
		if p == self || slices.Contains(m.ids, p) {
			continue
		}
		m.peers = append(m.peers, Instance{ID: p, GRPCAddr: p})
		m.ids = append(m.ids, p)
	}
	return m
}

// Self is this replica.
func (m *StaticMembership) Self() Instance { return m.self }

// Peers are the other replicas.
func (m *StaticMembership) Peers() ([]Instance, error) { return slices.Clone(m.peers), nil }

// Owns tells whether the cluster ranks this replica first.
func (m *StaticMembership) Owns(cluster string) bool {
	return rendezvous(m.ids, cluster) == m.self.ID
}

// rendezvous is the id that ranks first for key (highest random weight).
func rendezvous(ids []string, key string) string {
	var best string
	var bestScore uint64
	for _, id := range ids {
		d := xxhash.New()
		_, _ = d.WriteString(id)
		_, _ = d.WriteString("\x00")
		_, _ = d.WriteString(key)
		if s := d.Sum64(); best == "" || s > bestScore || (s == bestScore && id < best) {
			best, bestScore = id, s
		}
	}
	return best
}

// advertiseAddress is the StoreAPI address other replicas reach this one
// at: the advertised one, else the listen address, with the host name for
// a listen address on every interface.
func advertiseAddress(advertise, listen string) (string, error) {
	if advertise != "" {
		return advertise, nil
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("grpc listen address %q: %w", listen, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("host name for the StoreAPI's advertised address: %w", err)
		}
	}
	return net.JoinHostPort(host, port), nil
}
