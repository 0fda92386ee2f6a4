// Package metricstore is the hub's metrics storage: the clusters' series
// spread by a hash of the cluster's name over a fixed number of Prometheus
// TSDBs (shards) through Thanos's MultiTSDB — WAL, head compaction, and block
// shipping to an object-storage bucket — and one fleet-wide Queryable over
// every shard through Thanos's proxy store. Every series carries its
// cluster's name as the "cluster" label, which the store sets from the
// writer's authenticated identity (replacing any the writer gave), so a
// cluster cannot write series that read as another cluster's. A shard is a
// storage detail: its label marks the blocks it ships, and reads never show
// it. With a bucket, the proxy store also reads the bucket's blocks through
// Thanos's store gateway code (BucketStore), so data past local retention,
// or on a lost disk, stays queryable; a block both local and shipped is read
// from the local disk.
//
// A TSDB per cluster, the earlier layout, cost every cluster 1.5 MiB and 4
// open files, which held one hub to about 3,800 clusters; shards keep both
// flat in the number of clusters. Blocks an earlier hub shipped (labelled
// with their cluster) stay readable from the bucket.
package metricstore
