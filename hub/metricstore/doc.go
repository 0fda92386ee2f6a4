// Package metricstore is the hub's metrics storage: one Prometheus TSDB per
// cluster (tenant) through Thanos's MultiTSDB — WAL, head compaction, and
// block shipping to an object-storage bucket — and one fleet-wide Queryable
// over every tenant through Thanos's proxy store, on which each series
// carries its cluster's name as the "cluster" label. Because that label comes
// from the tenant a series was written to, and writes are routed to tenants by
// the caller's authenticated identity, a cluster cannot write series that
// read as another cluster's.
package metricstore
