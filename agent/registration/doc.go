// Package registration is the agent's side of joining a hub and staying
// joined: it registers the cluster with a bootstrap token (checking the hub's
// CA against a pinned hash), waits for the hub to accept it, keeps the client
// certificate the hub issues in the agent's state folder for the Collector's
// exporter, heartbeats over mutual TLS with the health of the cluster's own
// apiserver, renews the certificate before it expires, and stops the agent
// when the hub deregisters the cluster. The wire format is api/agentapi.
//
// An Agent is built with New, joins (or reuses stored credentials) in Start,
// and heartbeats and renews in Run until its context ends or the hub
// deregisters the cluster. In the agent, extensions/registration runs it
// inside the Collector.
package registration
