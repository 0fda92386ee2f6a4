// Package limits holds the hub's per-cluster ingest limits, modelled on
// Thanos receive's (pkg/receive limiter*.go, head_series_limiter.go): the
// length of label names and values, labels per series, series, samples and
// decompressed bytes per request, head (active) series per cluster, and a
// token bucket of requests per cluster. A YAML file (Config: "default" and
// "clusters") sets them, reloaded by Limiter.Reload; without one every
// cluster has DefaultLimits. A refusal (Refusal) names the limit and its
// value and is counted in fleetpulse_hub_ingest_limited_total{cluster,
// limit}; Limiter.Forget drops a deregistered cluster's state and counts.
// hub/ingest checks them before anything of a request is appended.
package limits
