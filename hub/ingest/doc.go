// Package ingest is the hub's write path for agents: Prometheus remote write
// 1.0 and 2.0 into the TSDB of the cluster named by the caller's verified
// client certificate. Missing or unverified certificates get 401, names that
// are not cluster names 403, oversized bodies 413, undecodable ones 400, and
// a TSDB still opening 503 with Retry-After — each with a message saying
// which.
//
// Remote write 2.0 goes through Prometheus's own handler (storage/remote).
// Remote write 1.0 of float samples goes through rw1.go, which decodes as
// Thanos receive does, without copying label strings, and appends by
// series reference, copying the labels of new series only; it answers as
// Prometheus's handler does, and hands that handler what it does not
// handle the same way (exemplars, native histograms, labels Prometheus
// refuses, bodies it cannot decode).
package ingest
