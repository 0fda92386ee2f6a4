//go:generate go tool mdatagen metadata.yaml

// Package k8sevents is the Fleetpulse agent's Kubernetes events receiver
// (type k8s_events): it watches core/v1 Events and emits each new occurrence
// once as an OpenTelemetry log record with Kubernetes attributes.
//
// It remembers what it sent: an informer's re-list or resync repeats nothing,
// and with a storage extension a restart resumes after the last event sent
// instead of replaying the cluster's event history. Without storage it sends
// only events seen after it started. A token-bucket rate bound protects the
// hub from event storms; events over it are dropped and counted.
package k8sevents
