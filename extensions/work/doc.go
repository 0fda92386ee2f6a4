//go:generate go tool mdatagen metadata.yaml

// Package work is the agent's work applier as a Collector extension (type
// fleetpulse_work): it runs agent/work inside the agent's Collector,
// applying the hub's ManifestWorks for the cluster from Start to Shutdown.
// It calls the hub with the credentials the registration keeps in
// state_dir, and starts after the fleetpulse_registration extension (the
// registration setting names it). What keeps the applier from its job (its
// records unreadable, the hub not listing, a status not reported; all
// retried) is the extension's recoverable-error status, cleared once it
// works again; a configuration it cannot build a client from fails Start.
// The applier's counts are the extension's own telemetry.
package work
