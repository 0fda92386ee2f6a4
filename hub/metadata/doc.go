// Package metadata keeps the metric metadata (type, help, unit) the
// clusters remote-write, per cluster, as Mimir keeps it per tenant: remote
// write 1.0 sends it as a list of metric families, 2.0 with every series
// (the family is then the series' metric name, as Prometheus's own
// receiver and Mimir take it). The query API serves it at /api/v1/metadata,
// merged over the clusters as Prometheus merges its targets' metadata.
//
// It is bounded: a cluster keeps at most MaxFamiliesPerCluster families
// (new ones past it are dropped, existing ones still updated) and a help
// text at most MaxHelpBytes (longer is cut); what is dropped or cut is
// counted. Metadata is held in memory only: writers send it again (an
// agent with every request, Prometheus every minute), so a restarted hub
// has it back within a minute. Entries that clusters share (most are: the
// same exporters run everywhere) are held once.
package metadata
