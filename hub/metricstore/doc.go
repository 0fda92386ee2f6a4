// Package metricstore is the hub's metrics storage: one Prometheus TSDB per
// cluster (tenant) through Thanos's MultiTSDB — WAL, head compaction, and
// block shipping to an object-storage bucket — and one fleet-wide Queryable
// over every tenant through Thanos's proxy store, on which each series
// carries its cluster's name as the "cluster" label. Because that label comes
// from the tenant a series was written to, and writes are routed to tenants by
// the caller's authenticated identity, a cluster cannot write series that
// read as another cluster's. With a bucket, the proxy store also reads the
// bucket's blocks through Thanos's store gateway code (BucketStore), labelled
// by the cluster their meta.json names, so data past local retention, or on a
// lost disk, stays queryable; a block both local and shipped is read from the
// local disk.
package metricstore
