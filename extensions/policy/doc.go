//go:generate go tool mdatagen metadata.yaml

// Package policy is the agent's policy controller as a Collector extension
// (type fleetpulse_policy): it runs agent/policy's engine inside the
// agent's Collector from Start to Shutdown, with agent/policy/remote as
// its Source and StatusSink, so that the cluster's policy replicas come
// from the hub's long poll and their status goes back to the hub. It calls
// the hub with the credentials the registration keeps in state_dir and
// starts after the fleetpulse_registration extension. What keeps it from
// its job (the hub not listing, a status not reported; all retried) is the
// extension's recoverable-error status, cleared once it works again; a
// configuration it cannot build a client from fails Start. The engine's
// metrics (fleetpulse.policy.compliant and the others) go to the
// Collector's MeterProvider, which the agent exports to the hub.
package policy
