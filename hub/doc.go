// Package hub is the Fleetpulse hub process: it owns the listeners, the
// operational endpoints (/metrics, /-/healthy, /-/ready) and the lifecycle of
// the hub's parts. The telemetry store, the gateway for agents and the control
// plane's controllers plug into it as they land.
package hub
