// Package v1alpha1 defines ClusterProfile of the SIG-Multicluster Cluster
// Inventory API (multicluster.x-k8s.io/v1alpha1, KEP-4322), the standard
// object through which multicluster tools discover a fleet's clusters. The
// module that publishes it upstream is not available here, so the schema is
// defined locally; the hub writes one ClusterProfile per managed cluster.
//
// +kubebuilder:object:generate=true
// +groupName=multicluster.x-k8s.io
package v1alpha1
