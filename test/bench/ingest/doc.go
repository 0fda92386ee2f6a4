// Package ingest benchmarks the hub's ingest path against its peers, and its
// query path on a fleet's worth of data.
//
// BenchmarkIngest sends pre-generated remote-write loads (every request's
// bytes fixed before the first is sent) over TLS with client certificates
// to the hub (`fleetpulse hub`), VictoriaMetrics single-node v1.151.0,
// Thanos receive v0.42.4 and Prometheus v3 (module v0.309.1), one after the
// other, each a process of its own pinned to the same core; the peers are
// built by version from modules of their own (../vmpeer, ../thanospeer,
// ../prompeer) into .cache/bench. Its sub-benchmarks are the workload
// shapes: fleet (100 small clusters' inventory), large (one cluster of
// 100,000 series, 2,000 series per request, four senders), churn (large
// with a tenth of its series replaced every ten minutes) and fleet-rw2 and
// large-rw2 (the same samples as remote write 2.0, to the receivers that
// speak it). For each it reports every receiver's samples per CPU-second
// and resident bytes per active series, and the hub's ratios to each peer;
// every target must have stored every sample, or the benchmark fails. With
// FLEETPULSE_BENCH_PROFILE=<dir>, each target's CPU and heap profiles are
// written there (<shape>-<receiver>.cpu.pprof, .heap.pprof). With
// FLEETPULSE_BENCH_RECEIVERS=<names> (comma-separated, e.g. "hub") only
// those receivers are measured, and with FLEETPULSE_BENCH_HUB=<binary>
// that build of the hub: two builds of the hub compare in a minute.
//
// BenchmarkFleetOverviewQueries loads an hour of the same fleet, with what
// the hub adds to it (recording-rule outputs, alerts, event counts, the
// agents' own metrics), into the hub and times the queries of the shipped
// Fleet-overview dashboard against it.
//
// Run with:
//
//	go test -tags slicelabels -run '^$' -bench . -benchtime 1x -timeout 60m ./test/bench/ingest/
//
// or one shape, e.g. -bench 'Ingest/large$'.
package ingest
