// Package fleetsim simulates a fleet of Fleetpulse agents against one hub,
// for benchmarks of the hub at fleet scale (test/bench's
// BenchmarkFleetRegistration registers 10,000 clusters with it).
//
// A simulated agent is what the hub sees of a real one, without the
// Kubernetes cluster and the Collector behind it: it generates a key and a
// CSR, registers with a bootstrap token and its own id.k8s.io claim (POST
// /api/v1/registration, repeated while the hub has not accepted it), and,
// once it holds its certificate, heartbeats over mutual TLS every period the
// hub gives it and remote-writes (protobuf 1.0, snappy) the inventory series
// a small cluster's agent sends every collection interval: 34 series of the
// agent's k8s_cluster_* and k8s_node_* metrics (README "Inventory
// metrics").
//
// It is goroutine-light: no goroutine per cluster. One scheduler holds
// every cluster's next heartbeat and write in a heap and hands due calls to
// a bounded pool of workers; each cluster has its own HTTP transport (its
// client certificate is its identity) with one kept-alive connection, and
// its calls run one at a time on it. With hub replicas in a ring, a call
// that a replica answers 307 is repeated at the cluster's owner, and the
// cluster's later calls go to the owner directly, on its one kept-alive
// connection, until a call there fails to connect; a call that fails for a reason the agent
// waits out (no connection, 429, 5xx) is repeated after Retry-After or a
// doubling backoff, before its next period. Registration runs with a bounded
// number of concurrent requests over one shared transport. Clusters can be
// lost (Lose): they stop calling, drop their connection, and the time of
// their last acknowledged heartbeat is returned, so that a benchmark can
// time the hub's reaction.
package fleetsim
