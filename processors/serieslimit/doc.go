//go:generate go tool mdatagen metadata.yaml

// Package serieslimit is the processor (type series_limit) that bounds what
// an agent sends: metric names must pass an allowlist and a denylist, and
// each metric may have at most max_series_per_metric distinct series. Over
// the cap, points of new series are dropped while known series keep flowing
// (as Prometheus-style limits do), and series not seen for series_ttl free
// their slot. Every dropped point is counted by reason.
package serieslimit
