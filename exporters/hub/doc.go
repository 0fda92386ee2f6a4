// Package hub is the Fleetpulse agent's exporter to the hub (type fleetpulse_hub).
// Metrics go as Prometheus remote write 1.0 (protobuf, snappy), with every
// resource attribute (cluster, node, namespace, pod) turned into a label;
// logs go as OTLP/HTTP protobuf. Both use the Collector's exporterhelper:
// a sending queue that persists to disk when a storage extension is named,
// retries with exponential backoff on 5xx, 429 and network errors (honouring
// Retry-After), and no retry on other 4xx, which the hub uses for bad data.
package hub
