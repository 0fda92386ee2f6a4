// Package ingest is the hub's write path for agents: Prometheus remote write
// 1.0 and 2.0 (Prometheus's own handler) into the TSDB of the cluster named by
// the caller's verified client certificate. Missing or unverified
// certificates get 401, names that are not cluster names 403, oversized
// bodies 413, undecodable ones 400, and a TSDB still opening 503 with
// Retry-After — each with a message saying which.
package ingest
