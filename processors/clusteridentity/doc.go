//go:generate go tool mdatagen metadata.yaml

// Package clusteridentity is the processor (type cluster_identity) that stamps
// the cluster's registered name, and its cluster set when it has one, on every
// resource the agent sends, replacing whatever a workload put there: the hub
// trusts these only together with the caller's credential, and enforces the
// same name, but dashboards and rules read them as plain labels.
package clusteridentity
