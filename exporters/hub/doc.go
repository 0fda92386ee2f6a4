//go:generate go tool mdatagen metadata.yaml

// Package hub is the Fleetpulse agent's exporter to the hub (type fleetpulse_hub).
// Metrics go as Prometheus remote write (protobuf, snappy): 1.0 by default,
// or 2.0 with protocol: rw2 (a symbol table, each series' type, unit and
// help, and the receiver's count of samples written checked against what
// was sent), with every resource attribute (cluster, node, namespace, pod)
// turned into a label; logs go as OTLP/HTTP protobuf. Both use the
// Collector's exporterhelper: a sending queue that persists to disk when a
// storage extension is named, retries with exponential backoff on 5xx, 429
// and network errors (honouring Retry-After), and no retry on other 4xx,
// which the hub uses for bad data.
package hub
