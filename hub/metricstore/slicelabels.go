//go:build !slicelabels

package metricstore

// Thanos's zero-copy label conversion assumes Prometheus's slice label
// layout: without the slicelabels build tag the hub builds but corrupts
// memory on its first query. Refuse to build instead.
var _ = buildWithTagsSlicelabels // go build -tags slicelabels (the Makefile does)
