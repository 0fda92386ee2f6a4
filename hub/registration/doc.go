// Package registration is the hub's side of cluster registration: bootstrap
// tokens (Secrets on the hub's control plane), the endpoints on the agents'
// gateway (hub/gateway) where agents register, heartbeat and renew their
// certificates, the gateway's authenticator (Service.Authenticate: a
// certificate proves its cluster while the registration it names stands),
// the certificate authority that signs agents' client certificates, and
// the ManagedCluster controller that turns acceptance, heartbeats and
// telemetry into the cluster's namespace, conditions, taints, Lease and
// ClusterProfile. Its controllers are one set among the hub's on the
// control plane's manager (hub/controlplane), which Setup adds them to.
package registration
