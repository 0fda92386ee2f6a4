// Package bench holds Fleetpulse's footprint benchmarks. They run the
// fleetpulse-agent binary next to a peer built from upstream OpenTelemetry
// Collector components (the contribpeer module in ./contribpeer, a module of
// its own so that its dependencies stay out of the product's go.mod) against
// one real test-bed cluster, and compare the two processes' resident memory
// and CPU.
//
// BenchmarkFleetRegistration registers a simulated fleet (./fleetsim:
// lightweight agents speaking the real protocol) with one `fleetpulse hub`
// process on a test-bed control plane and measures registrations per
// second, the hub's CPU and memory in steady state and the time from a lost
// cluster's last heartbeat to its ManagedCluster going Unknown.
//
// BenchmarkScaleOut runs the same simulated fleet against one hub and
// against three hub replicas in a ring, and compares each process's CPU and
// memory, the Fleet-overview dashboard's query latency through the one hub,
// a stock `thanos query` over the replicas and a replica's own /api/v1, and
// times the takeover of a killed replica's clusters.
//
// Run with:
//
//	go test -run '^$' -bench AgentFootprint -benchtime 1x -timeout 30m ./test/bench/
//	go test -tags slicelabels -run '^$' -bench FleetRegistration -benchtime 1x -timeout 60m ./test/bench/
//	FLEETPULSE_SCALEOUT_CLUSTERS=9000 go test -tags slicelabels -run '^$' -bench ScaleOut -benchtime 1x -timeout 90m ./test/bench/
package bench
