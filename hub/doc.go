// Package hub is the Fleetpulse hub process: it owns the listeners, the
// operational endpoints (/metrics, /-/healthy, /-/ready) and the lifecycle of
// the hub's parts, and composes them: the telemetry store and the query
// API on the users' port, the agents' gateway (hub/gateway) on the agents'
// port with the handlers behind it, and, with a control plane, the
// controllers on its manager (hub/controlplane).
package hub
