// Package registration is the hub's side of cluster registration: bootstrap
// tokens (Secrets on the hub's control plane), the gateway endpoints agents
// register, heartbeat and renew their certificates at, the certificate
// authority that signs agents' client certificates, and the ManagedCluster
// controller that turns acceptance, heartbeats and telemetry into the
// cluster's namespace, conditions, taints, Lease and ClusterProfile.
package registration
