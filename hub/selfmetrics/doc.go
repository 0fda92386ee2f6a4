// Package selfmetrics writes chosen series of the hub's own registry into
// its store, every interval, as a scrape of the hub would: so that the
// hub's rules, its PromQL API and the dashboards read the hub's state (the
// rollouts' fleetpulse_hub_rollout_* series) beside the clusters' series,
// without a Prometheus scraping the hub. The series carry the labels they
// have in the registry and no cluster label; a series that leaves the
// registry gets a staleness marker, as Prometheus's scrape writes one.
package selfmetrics
