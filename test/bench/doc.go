// Package bench holds Fleetpulse's footprint benchmarks. They run the
// fleetpulse-agent binary next to a peer built from upstream OpenTelemetry
// Collector components (the contribpeer module in ./contribpeer, a module of
// its own so that its dependencies stay out of the product's go.mod) against
// one real test-bed cluster, and compare the two processes' resident memory
// and CPU.
//
// Run with:
//
//	go test -run '^$' -bench AgentFootprint -benchtime 1x -timeout 30m ./test/bench/
package bench
