// Package events is the hub's store of clusters' Kubernetes events, which
// agents send as OTLP logs: a bounded in-memory ring (the newest events win),
// queryable by cluster and time over HTTP, and counted as Prometheus metrics
// by cluster, reason, type and involved-object kind.
package events
