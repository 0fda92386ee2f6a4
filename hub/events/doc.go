// Package events is the hub's store of clusters' Kubernetes events, which
// agents send as OTLP logs: a bounded in-memory ring (the newest events win,
// within a count and a byte budget), queryable by cluster and time over
// HTTP, and counted as Prometheus metrics by cluster, reason, type and
// involved-object kind.
//
// Everything an event carries is chosen by the users of the cluster that
// sent it, so everything is bounded here: reasons, types and kinds outside
// known sets count as "other" (vocabulary.go), fields are cut to maxima
// (decode.go), a request's encoding is checked before it is decoded
// (inspect.go), queries return at most MaxQueryLimit events, and a
// deregistered cluster's state goes with Forget.
package events
