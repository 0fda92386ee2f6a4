// Package ingest benchmarks the hub's ingest path against its peers, and its
// query path on a fleet's worth of data.
//
// BenchmarkIngest sends one pre-generated remote-write 1.0 load (an hour of
// 100 simulated clusters' inventory, every request's bytes fixed before the
// first is sent) over mutual TLS to the hub (`fleetpulse hub`), to Debian's
// Prometheus 2.42 remote-write receiver and to Thanos receive v0.42.4 (built
// from the module in ../thanospeer into .cache/bench), one after the other,
// each a process of its own, and then the same samples as remote write 2.0
// (what the agent sends) to the hub alone. It reports each one's samples per
// CPU-second and resident bytes per active series, and the hub's ratios to
// the two peers; every target must have stored every sample, or the
// benchmark fails. With FLEETPULSE_BENCH_PROFILE=<dir>, each target's CPU
// and heap profiles are written there.
//
// BenchmarkFleetOverviewQueries loads an hour of the same fleet, with what
// the hub adds to it (recording-rule outputs, alerts, event counts, the
// agents' own metrics), into the hub and times the queries of the shipped
// Fleet-overview dashboard against it.
//
// Run with:
//
//	go test -tags slicelabels -run '^$' -bench . -benchtime 1x -timeout 30m ./test/bench/ingest/
package ingest
