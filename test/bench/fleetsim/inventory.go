package fleetsim

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
)

// series is one inventory series of a cluster: its labels, sorted by name,
// and its value at the n-th collection.
type series struct {
	labels []prompb.Label
	value  func(n int) float64
}

// Shape of every simulated cluster: a small cluster, three nodes, the two
// namespaces that hold pods.
const (
	simNodes     = 3
	nodeCPU      = 4.0
	nodeMemory   = 16 << 30
	nodePods     = 110.0
	clusterVer   = "v1.35.4"
	clusterPlat  = "linux/amd64"
	reservedCPU  = 0.2 // per node, capacity minus allocatable
	reservedMem  = 512 << 20
	coreDNSPods  = 2.0
	systemPods   = 8.0
	userPods     = 12.0
	podCPU       = 0.1
	podMemory    = 128 << 20
	restartEvery = 20 // collections between two restarts of a pod in default
)

// inventory returns the series an agent of a cluster like this sends every
// collection: the cluster-wide aggregates, per-node conditions and
// allocatable, pods by namespace and phase, restarts and one Deployment.
// Every series carries k8s_cluster_name, as the agent's cluster_identity
// processor stamps it.
func inventory(cluster string, idx int) []series {
	var out []series
	add := func(name string, value func(int) float64, pairs ...string) {
		l := []prompb.Label{{Name: model.MetricNameLabel, Value: name}, {Name: "k8s_cluster_name", Value: cluster}}
		for i := 0; i+1 < len(pairs); i += 2 {
			l = append(l, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
		}
		slices.SortFunc(l, func(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) })
		out = append(out, series{labels: l, value: value})
	}
	constant := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	pods := systemPods + userPods
	add("k8s_cluster_node_count", constant(simNodes), "k8s_node_condition_ready", "true")
	add("k8s_cluster_node_count", constant(0), "k8s_node_condition_ready", "false")
	add("k8s_cluster_capacity_cpu", constant(simNodes*nodeCPU))
	add("k8s_cluster_capacity_memory_bytes", constant(simNodes*nodeMemory))
	add("k8s_cluster_capacity_pods", constant(simNodes*nodePods))
	add("k8s_cluster_allocatable_cpu", constant(simNodes*(nodeCPU-reservedCPU)))
	add("k8s_cluster_allocatable_memory_bytes", constant(simNodes*(nodeMemory-reservedMem)))
	add("k8s_cluster_allocatable_pods", constant(simNodes*nodePods))
	add("k8s_cluster_info", constant(1), "k8s_cluster_version", clusterVer, "k8s_cluster_platform", clusterPlat)
	add("k8s_cluster_cpu_request", constant(pods*podCPU))
	add("k8s_cluster_memory_request_bytes", constant(pods*podMemory))
	for ns, running := range map[string]float64{"kube-system": systemPods, "default": userPods} {
		for _, phase := range []string{"Pending", "Running", "Succeeded", "Failed", "Unknown"} {
			v := 0.0
			if phase == "Running" {
				v = running
			}
			add("k8s_cluster_pod_count", constant(v), "k8s_namespace_name", ns, "k8s_pod_status_phase", phase)
		}
	}
	add("k8s_cluster_container_restarts", constant(0), "k8s_namespace_name", "kube-system")
	// One pod of default restarts now and then; clusters are out of step.
	add("k8s_cluster_container_restarts", func(n int) float64 { return float64((n + idx) / restartEvery) }, "k8s_namespace_name", "default")
	for i := range simNodes {
		node := fmt.Sprintf("%s-node-%d", cluster, i)
		uid := fmt.Sprintf("00000000-0000-4000-8000-%06d%06d", idx%1e6, i)
		add("k8s_node_condition_status", constant(1), "k8s_node_name", node, "k8s_node_condition_type", "Ready", "k8s_node_condition_status", "true")
		add("k8s_node_allocatable_cpu", constant(nodeCPU-reservedCPU), "k8s_node_name", node, "k8s_node_uid", uid)
		add("k8s_node_allocatable_memory_bytes", constant(nodeMemory-reservedMem), "k8s_node_name", node, "k8s_node_uid", uid)
	}
	add("k8s_deployment_pod_desired", constant(coreDNSPods), "k8s_namespace_name", "kube-system", "k8s_deployment_name", "coredns")
	add("k8s_deployment_pod_available", constant(coreDNSPods), "k8s_namespace_name", "kube-system", "k8s_deployment_name", "coredns")
	return out
}

// SeriesPerCluster is how many inventory series each simulated cluster
// writes every collection interval.
var SeriesPerCluster = len(inventory("x", 0))

// writeRequest is the n-th collection of a cluster at ts (milliseconds).
func writeRequest(inv []series, n int, ts int64) *prompb.WriteRequest {
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(inv))}
	for i, s := range inv {
		req.Timeseries[i] = prompb.TimeSeries{Labels: s.labels, Samples: []prompb.Sample{{Value: s.value(n), Timestamp: ts}}}
	}
	return req
}
