// Package v1alpha1 is the fleetpulse.io/v1alpha1 API: ManagedCluster (a
// cluster registered with the hub, its acceptance, taints, health and
// inventory) and ClusterSet (a named group of managed clusters).
//
// +kubebuilder:object:generate=true
// +groupName=fleetpulse.io
package v1alpha1
