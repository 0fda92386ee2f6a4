// Package query serves the Prometheus HTTP API (/api/v1: query, query_range,
// series, labels, label values, metadata, rules, alerts, status/buildinfo)
// with Prometheus's own engine and API code over the hub's fleet-wide
// Queryable, so Grafana's Prometheus datasource, promtool and client_golang's
// API client work unchanged. QueryFunc is the same engine's instant query
// for the hub's own controllers (registration's inventory, placement's
// scores).
package query
