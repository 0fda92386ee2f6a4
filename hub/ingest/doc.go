// Package ingest is the hub's write path for agents: Prometheus remote write
// 1.0 and 2.0 into the TSDB of the cluster the agents' gateway
// authenticated (hub/gateway: it answers callers without a cluster's
// certificate, and clusters over their request rate, before this handler).
// Oversized bodies get 413, undecodable ones 400, requests over the
// cluster's other limits (hub/limits) 400, 413 or 429, and a TSDB still
// opening 503 with Retry-After — each with a message saying which.
//
// Both versions of float samples go through the hub's own paths, rw1.go
// (1.0) and rw2.go (2.0), which decode without copying label strings (1.0
// as Thanos receive does; 2.0 with symbols pointing into the request) and
// append by series reference, copying the labels of new series only. They
// answer as Prometheus's own handler (storage/remote) does, and hand that
// handler what they do not handle the same way (exemplars, native
// histograms, labels Prometheus refuses, bodies they cannot decode). Both
// keep each cluster's series references by their labels as written
// (refcache.go), so a series written again costs neither decoding its
// labels nor a lookup in the head, and decode each request into pooled
// memory (buffers.go).
package ingest
