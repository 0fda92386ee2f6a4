package ring

import (
	"hash/fnv"
	"strings"
)

// Instance is one hub replica as the ring knows it.
type Instance struct {
	// ID is the replica's name in the ring (--ring.instance-id).
	ID string
	// HTTPAddr is host:port of the replica's agents' gateway, where agents
	// are sent for the clusters it owns.
	HTTPAddr string
	// GRPCAddr is host:port of its Thanos StoreAPI; empty when it serves none.
	GRPCAddr string
}

// The ring keeps one address per instance; a replica registers both of its
// addresses in it, the gRPC one after a comma when it serves the StoreAPI.
func encodeAddr(in Instance) string {
	if in.GRPCAddr == "" {
		return in.HTTPAddr
	}
	return in.HTTPAddr + "," + in.GRPCAddr
}

func decodeInstance(id, addr string) Instance {
	http, grpc, _ := strings.Cut(addr, ",")
	return Instance{ID: id, HTTPAddr: http, GRPCAddr: grpc}
}

// Token is the ring token of a cluster: FNV-1a of its name, as Cortex and
// Mimir take a tenant's.
func Token(cluster string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(cluster))
	return h.Sum32()
}
