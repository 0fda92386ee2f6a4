// Package api holds Fleetpulse's Kubernetes API types and their generated
// CustomResourceDefinitions: v1alpha1 is the fleetpulse.io group (managed
// clusters, cluster sets), clusterinventory/v1alpha1 the SIG-Multicluster
// Cluster Inventory API's ClusterProfile that the hub publishes. CRDs() gives
// the CRD manifests the hub installs on its control plane.
package api
