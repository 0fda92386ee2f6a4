//go:generate go tool mdatagen metadata.yaml

// Package registration is the agent's registration as a Collector extension
// (type fleetpulse_registration): it runs agent/registration inside the
// agent's Collector. Its Start joins the hub, or reuses the credentials
// stored in state_dir, before the Collector starts its pipelines, so the
// hub exporter, which reads its client certificate from
// state_dir/credentials, starts with credentials the hub takes; until the
// hub accepts the cluster, the Collector waits in Start. Then heartbeats and
// certificate renewals run until Shutdown. Failing heartbeats or renewals
// (retried) are the extension's recoverable-error status; a deregistered
// cluster, or credentials the hub refuses, are a fatal status that stops
// the agent (WithStop) and the extension's Shutdown error, so the agent
// exits non-zero. The registration's counts are the extension's own
// telemetry.
package registration
