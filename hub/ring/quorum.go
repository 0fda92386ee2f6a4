package ring

import (
	"fmt"

	dskitring "github.com/grafana/dskit/ring"
)

// Quorum is how many of a cluster's rf owners must write a sample before
// its agent is answered, as Thanos receive counts it: floor(rf/2)+1. At
// replication factor 2 that is both owners (Thanos v0.42 makes 2 a special
// case with a quorum of 1; here an acknowledged sample is on every owner,
// so that losing one loses nothing acknowledged).
func Quorum(rf int) int { return rf/2 + 1 }

// WriteSet is the replicas a write for cluster goes to, this one among them
// or not, as dskit's ReplicationSet: its healthy owners, and how many of
// them may fail (MaxErrors) with a quorum of the replication factor still
// written. The quorum counts the configured replication factor, not the
// healthy owners: an owner that is dead but not yet forgotten counts as a
// failed write, so that while one is, at replication factor 2, the write
// fails (and its agent retries) until the ring names another owner. An
// instance's addresses are InstanceOf's. Without a ring, this hub alone.
func (r *Ring) WriteSet(cluster string) (dskitring.ReplicationSet, error) {
	if r.client == nil {
		return dskitring.ReplicationSet{Instances: []dskitring.InstanceDesc{{Id: r.self.ID, Addr: encodeAddr(r.self)}}}, nil
	}
	rs, err := r.client.Get(Token(cluster), dskitring.Write, nil, nil, nil)
	if err != nil {
		return dskitring.ReplicationSet{}, fmt.Errorf("owners of cluster %q: %w", cluster, err)
	}
	rf := r.client.ReplicationFactor()
	quorum := Quorum(rf)
	if len(rs.Instances) < quorum {
		return dskitring.ReplicationSet{}, fmt.Errorf("%d of the %d owners of cluster %q are healthy, and a write needs %d", len(rs.Instances), rf, cluster, quorum)
	}
	rs.MaxErrors = len(rs.Instances) - quorum
	return rs, nil
}

// InstanceOf is the replica an instance of a WriteSet is.
func InstanceOf(d *dskitring.InstanceDesc) Instance { return decodeInstance(d.Id, d.Addr) }

// KeepOnShutdown keeps this replica's entry in the ring when it stops, as
// a killed replica's stays: the others forget it only after the heartbeat
// timeout. For tests of a replica that dies, and for a restart in place.
func (r *Ring) KeepOnShutdown() {
	if r.lc != nil {
		r.lc.SetKeepInstanceInTheRingOnShutdown(true)
	}
}
