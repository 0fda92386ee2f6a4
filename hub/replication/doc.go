// Package replication writes each agent's remote write to every owner of
// its cluster, as Thanos receive replicates: the first owner, which the
// agent reached (hub/gateway redirects it there), writes the request into
// its own store through hub/ingest's handler and sends the same body, in
// parallel, to the cluster's other owners (dskit's ReplicationSet.Do over
// hub/ring's WriteSet), and answers the agent 2xx only once a quorum of the
// replication factor (floor(rf/2)+1: both owners at 2) wrote it. A write
// that misses the quorum is answered 503 with Retry-After, so the agent
// sends it again; owners that wrote it the first time take the repeat as
// the duplicate it is.
//
// A replicated write goes to the owner's agents' port, at
// /replication/v1/write/{cluster}, with this replica's client certificate
// from the replication CA (Config). The receiver (hub/gateway's Replica
// routes) takes it only from a certificate of that CA, only for a cluster
// it owns, and writes it with the same ingest handler and limits as an
// agent's write, without replicating it again.
package replication
