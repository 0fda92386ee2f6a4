//go:generate go tool mdatagen metadata.yaml

// Package k8sinventory is the Fleetpulse agent's Kubernetes inventory receiver
// (type k8s_inventory). It watches nodes, namespaces, pods and workloads with
// client-go shared informers and, every collection interval, emits the
// cluster's shape as metrics named after the OpenTelemetry semantic
// conventions for Kubernetes: node readiness, capacity and allocatable per
// node and per cluster, the CPU and memory that pods request per node and per
// cluster, pod counts by namespace and phase, container restarts by namespace,
// waiting containers by namespace and reason, workload desired and available
// replicas, and the Kubernetes version. Series per pod are opt-in, so
// cardinality is bounded by nodes, namespaces and workloads.
package k8sinventory
