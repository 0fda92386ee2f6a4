package k8sinventory

import (
	"sort"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	corev1 "k8s.io/api/core/v1"
)

// Metric names. Where the OpenTelemetry semantic conventions for Kubernetes
// name a metric, that name is used; cluster-wide aggregates, which the
// conventions lack, follow the same pattern under k8s.cluster. The README
// lists the Prometheus names the standard translation gives them.
const (
	metricNodeCondition       = "k8s.node.condition.status"
	metricNodeAllocatableCPU  = "k8s.node.allocatable.cpu"
	metricNodeAllocatableMem  = "k8s.node.allocatable.memory"
	metricNodeAllocatablePods = "k8s.node.allocatable.pods"
	metricNodeCapacityCPU     = "k8s.node.capacity.cpu"
	metricNodeCapacityMem     = "k8s.node.capacity.memory"
	metricNodeCapacityPods    = "k8s.node.capacity.pods"
	metricNodeCPURequest      = "k8s.node.cpu.request"
	metricNodeMemoryRequest   = "k8s.node.memory.request"

	metricClusterNodes           = "k8s.cluster.node.count"
	metricClusterAllocatableCPU  = "k8s.cluster.allocatable.cpu"
	metricClusterAllocatableMem  = "k8s.cluster.allocatable.memory"
	metricClusterAllocatablePods = "k8s.cluster.allocatable.pods"
	metricClusterCapacityCPU     = "k8s.cluster.capacity.cpu"
	metricClusterCapacityMem     = "k8s.cluster.capacity.memory"
	metricClusterCapacityPods    = "k8s.cluster.capacity.pods"
	metricClusterPods            = "k8s.cluster.pod.count"
	metricClusterInfo            = "k8s.cluster.info"
	metricClusterCPURequest      = "k8s.cluster.cpu.request"
	metricClusterMemoryRequest   = "k8s.cluster.memory.request"
	metricClusterRestarts        = "k8s.cluster.container.restarts"
	metricClusterWaiting         = "k8s.cluster.container.waiting"
	metricNamespacePhase         = "k8s.namespace.phase"
	metricDeploymentDesired      = "k8s.deployment.pod.desired"
	metricDeploymentAvailable    = "k8s.deployment.pod.available"
	metricStatefulSetDesired     = "k8s.statefulset.pod.desired"
	metricStatefulSetReady       = "k8s.statefulset.pod.ready"
	metricDaemonSetDesired       = "k8s.daemonset.node.desired_scheduled"
	metricDaemonSetCurrent       = "k8s.daemonset.node.current_scheduled"
	metricDaemonSetReady         = "k8s.daemonset.node.ready"
	metricPodPhase               = "k8s.pod.status.phase"
)

// nodeConditions are the node conditions reported, in order.
var nodeConditions = []corev1.NodeConditionType{
	corev1.NodeReady, corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeNetworkUnavailable,
}

// podPhases are reported for every namespace, zeros included, so a phase
// that empties reads 0 rather than vanishing.
var podPhases = []corev1.PodPhase{corev1.PodPending, corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed, corev1.PodUnknown}

// builder appends gauges to one pmetric.Metrics.
type builder struct {
	md  pmetric.Metrics
	now pcommon.Timestamp
}

// resource starts a resource with the given attributes (name, value pairs).
func (b *builder) resource(attrs ...string) pmetric.MetricSlice {
	rm := b.md.ResourceMetrics().AppendEmpty()
	for i := 0; i+1 < len(attrs); i += 2 {
		rm.Resource().Attributes().PutStr(attrs[i], attrs[i+1])
	}
	sm := rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName("github.com/fleetpulse/fleetpulse/receiver/k8sinventory")
	return sm.Metrics()
}

// gauge adds a gauge and returns it for data points.
func gauge(ms pmetric.MetricSlice, name, unit, desc string) pmetric.NumberDataPointSlice {
	m := ms.AppendEmpty()
	m.SetName(name)
	m.SetUnit(unit)
	m.SetDescription(desc)
	return m.SetEmptyGauge().DataPoints()
}

func (b *builder) intPoint(dps pmetric.NumberDataPointSlice, v int64, attrs ...string) {
	dp := dps.AppendEmpty()
	dp.SetTimestamp(b.now)
	dp.SetIntValue(v)
	for i := 0; i+1 < len(attrs); i += 2 {
		dp.Attributes().PutStr(attrs[i], attrs[i+1])
	}
}

func (b *builder) doublePoint(dps pmetric.NumberDataPointSlice, v float64) {
	dp := dps.AppendEmpty()
	dp.SetTimestamp(b.now)
	dp.SetDoubleValue(v)
}

// capacity is a node's or the cluster's cpu (cores), memory (bytes) and pods.
type capacity struct{ cpu, memory, pods float64 }

func capacityOf(l corev1.ResourceList) capacity {
	return capacity{
		cpu:    quantity(l, corev1.ResourceCPU),
		memory: quantity(l, corev1.ResourceMemory),
		pods:   quantity(l, corev1.ResourcePods),
	}
}

func quantity(l corev1.ResourceList, name corev1.ResourceName) float64 {
	q, ok := l[name]
	if !ok {
		return 0
	}
	if name == corev1.ResourceCPU {
		return float64(q.MilliValue()) / 1000
	}
	return q.AsApproximateFloat64()
}

func (c *capacity) add(o capacity) { c.cpu += o.cpu; c.memory += o.memory; c.pods += o.pods }

func (b *builder) capacityGauges(ms pmetric.MetricSlice, c capacity, cpu, mem, pods, what string) {
	b.doublePoint(gauge(ms, cpu, "{cpu}", what+" CPU, in cores"), c.cpu)
	b.doublePoint(gauge(ms, mem, "By", what+" memory"), c.memory)
	b.doublePoint(gauge(ms, pods, "{pod}", what+" pods"), c.pods)
}

// requestGauges adds the CPU (cores) and memory (bytes) requested.
func (b *builder) requestGauges(ms pmetric.MetricSlice, r requests, cpu, mem, what string) {
	b.doublePoint(gauge(ms, cpu, "{cpu}", "CPU "+what+", in cores"), float64(r.cpuMilli)/1000)
	b.doublePoint(gauge(ms, mem, "By", "Memory "+what), float64(r.memory))
}

func conditionStatus(n *corev1.Node, t corev1.NodeConditionType) string {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return strings.ToLower(string(c.Status))
		}
	}
	return "unknown"
}

// buildMetrics turns one snapshot into metrics.
func buildMetrics(s *snapshot, podMetrics bool, now pcommon.Timestamp) pmetric.Metrics {
	b := &builder{md: pmetric.NewMetrics(), now: now}

	pods := totalPods(s.namespaces, s.pods)
	cluster := b.resource()
	var alloc, capa capacity
	ready, notReady := int64(0), int64(0)
	for _, n := range s.nodes {
		ms := b.resource("k8s.node.name", n.Name, "k8s.node.uid", string(n.UID))
		dps := gauge(ms, metricNodeCondition, "{node}", "Node condition: 1 for the condition's current status")
		for _, t := range nodeConditions {
			b.intPoint(dps, 1, "k8s.node.condition.type", string(t), "k8s.node.condition.status", conditionStatus(n, t))
		}
		na, nc := capacityOf(n.Status.Allocatable), capacityOf(n.Status.Capacity)
		b.capacityGauges(ms, na, metricNodeAllocatableCPU, metricNodeAllocatableMem, metricNodeAllocatablePods, "Allocatable")
		b.capacityGauges(ms, nc, metricNodeCapacityCPU, metricNodeCapacityMem, metricNodeCapacityPods, "Capacity")
		b.requestGauges(ms, pods.nodes[n.Name], metricNodeCPURequest, metricNodeMemoryRequest,
			"requested by the containers of the pods bound to the node and not terminated")
		alloc.add(na)
		capa.add(nc)
		if conditionStatus(n, corev1.NodeReady) == "true" {
			ready++
		} else {
			notReady++
		}
	}
	dps := gauge(cluster, metricClusterNodes, "{node}", "Nodes in the cluster, by readiness")
	b.intPoint(dps, ready, "k8s.node.condition.ready", "true")
	b.intPoint(dps, notReady, "k8s.node.condition.ready", "false")
	b.capacityGauges(cluster, alloc, metricClusterAllocatableCPU, metricClusterAllocatableMem, metricClusterAllocatablePods, "Allocatable (sum over nodes)")
	b.capacityGauges(cluster, capa, metricClusterCapacityCPU, metricClusterCapacityMem, metricClusterCapacityPods, "Capacity (sum over nodes)")
	if s.version != nil {
		b.intPoint(gauge(cluster, metricClusterInfo, "", "Kubernetes version of the cluster's apiserver"), 1,
			"k8s.cluster.version", s.version.GitVersion, "k8s.cluster.platform", s.version.Platform)
	}

	// Pod counts by namespace and phase, every namespace listed with zeros.
	dps = gauge(cluster, metricClusterPods, "{pod}", "Pods by namespace and phase")
	for _, ns := range sortedKeys(pods.phases) {
		for _, ph := range podPhases {
			b.intPoint(dps, pods.phases[ns][ph], "k8s.namespace.name", ns, "k8s.pod.status.phase", strings.ToLower(string(ph)))
		}
	}
	b.requestGauges(cluster, pods.cluster, metricClusterCPURequest, metricClusterMemoryRequest,
		"requested by the containers of pods bound to a node and not terminated")
	dps = gauge(cluster, metricClusterRestarts, "{restart}", "Container restarts (sum of restartCount) of the pods in a namespace")
	for _, ns := range sortedKeys(pods.restarts) {
		b.intPoint(dps, pods.restarts[ns], "k8s.namespace.name", ns)
	}
	if len(pods.waiting) > 0 {
		dps = gauge(cluster, metricClusterWaiting, "{container}", "Containers in state waiting, by namespace and reason")
		for _, ns := range sortedKeys(pods.waiting) {
			for _, reason := range sortedKeys(pods.waiting[ns]) {
				b.intPoint(dps, pods.waiting[ns][reason], "k8s.namespace.name", ns, "k8s.container.status.reason", reason)
			}
		}
	}

	for _, ns := range s.namespaces {
		ms := b.resource("k8s.namespace.name", ns.Name, "k8s.namespace.uid", string(ns.UID))
		dps := gauge(ms, metricNamespacePhase, "{namespace}", "Namespace phase: 1 for the current phase")
		b.intPoint(dps, 1, "k8s.namespace.phase", strings.ToLower(string(ns.Status.Phase)))
	}
	for _, d := range s.deployments {
		ms := b.resource("k8s.namespace.name", d.Namespace, "k8s.deployment.name", d.Name, "k8s.deployment.uid", string(d.UID))
		desired := int64(1)
		if d.Spec.Replicas != nil {
			desired = int64(*d.Spec.Replicas)
		}
		b.intPoint(gauge(ms, metricDeploymentDesired, "{pod}", "Desired replicas"), desired)
		b.intPoint(gauge(ms, metricDeploymentAvailable, "{pod}", "Available replicas"), int64(d.Status.AvailableReplicas))
	}
	for _, st := range s.statefulSets {
		ms := b.resource("k8s.namespace.name", st.Namespace, "k8s.statefulset.name", st.Name, "k8s.statefulset.uid", string(st.UID))
		desired := int64(1)
		if st.Spec.Replicas != nil {
			desired = int64(*st.Spec.Replicas)
		}
		b.intPoint(gauge(ms, metricStatefulSetDesired, "{pod}", "Desired replicas"), desired)
		b.intPoint(gauge(ms, metricStatefulSetReady, "{pod}", "Ready replicas"), int64(st.Status.ReadyReplicas))
	}
	for _, ds := range s.daemonSets {
		ms := b.resource("k8s.namespace.name", ds.Namespace, "k8s.daemonset.name", ds.Name, "k8s.daemonset.uid", string(ds.UID))
		b.intPoint(gauge(ms, metricDaemonSetDesired, "{node}", "Nodes that should run the daemon pod"), int64(ds.Status.DesiredNumberScheduled))
		b.intPoint(gauge(ms, metricDaemonSetCurrent, "{node}", "Nodes running the daemon pod"), int64(ds.Status.CurrentNumberScheduled))
		b.intPoint(gauge(ms, metricDaemonSetReady, "{node}", "Nodes with the daemon pod ready"), int64(ds.Status.NumberReady))
	}
	if podMetrics {
		for _, p := range s.pods {
			ms := b.resource("k8s.namespace.name", p.Namespace, "k8s.pod.name", p.Name, "k8s.pod.uid", string(p.UID), "k8s.node.name", p.nodeName)
			b.intPoint(gauge(ms, metricPodPhase, "{pod}", "Pod phase: 1 for the current phase"), 1, "k8s.pod.status.phase", strings.ToLower(string(p.phase)))
		}
	}
	return b.md
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
