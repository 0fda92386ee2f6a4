// Package ring is the hub replicas' membership: a dskit ring gossiped over
// memberlist, as Mimir and Loki run theirs. Each replica registers one
// instance with its agents' and StoreAPI addresses; a cluster is owned by
// the replication-factor instances the ring picks for the token of its
// name. Without a ring (the default) the one hub owns every cluster, and
// the same API answers so, so callers never ask which case they are in.
package ring
