package k8sinventory

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/otlptranslator"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/fleetpulse/fleetpulse/receiver/k8sinventory/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestRequestsRestartsAndWaiting checks, against a real cluster, the
// requests per node and per cluster, restarts per namespace and waiting
// containers per namespace and reason. Containers in CrashLoopBackOff come
// from pods bound to a Node that kwok does not manage, whose status the test
// writes through the status subresource: no kubelet or kwok overwrites it.
func TestRequestsRestartsAndWaiting(t *testing.T) {
	t.Parallel()
	c := testbed.StartClusters(t, "req", 1, testbed.ClusterOptions{Nodes: 2})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	ctx := context.Background()
	kwok0, kwok1, unmanaged := testbed.NodeName(c.Name, 0), testbed.NodeName(c.Name, 1), c.Name+"-unmanaged"

	cfg := createDefaultConfig()
	cfg.AuthType, cfg.Kubeconfig = AuthKubeconfig, c.KubeconfigPath
	cfg.CollectionInterval = 200 * time.Millisecond
	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(ctx, receivertest.NewNopSettings(metadata.Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(ctx, componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Shutdown(ctx) })

	waitFor(t, sink, map[string]float64{
		`k8s.cluster.cpu.request{}`:                                      0,
		`k8s.cluster.memory.request{}`:                                   0,
		`k8s.node.cpu.request{} k8s.node.name=` + kwok0:                  0,
		`k8s.cluster.container.restarts{k8s.namespace.name=default}`:     0,
		`k8s.cluster.container.restarts{k8s.namespace.name=kube-system}`: 0,
	})

	// A Node without kwok's annotation: no kwok, no kubelet writes to it or
	// to the pods bound to it.
	if _, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: unmanaged}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	const ns = "team-r"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitServiceAccount(t, client, ns)

	web := pod("web", kwok0, ctr("a", "250m", "64Mi"), ctr("b", "500m", "128Mi"))
	// Init containers are not counted (see podRequests).
	web.Spec.InitContainers = []corev1.Container{ctr("init", "2", "1Gi")}
	unscheduled := pod("unscheduled", "", ctr("a", "8", "8Gi"))
	unscheduled.Spec.NodeSelector = map[string]string{"no-such-label": "x"}
	pods := []*corev1.Pod{
		web,
		pod("batch", kwok1, ctr("a", "1", "1Gi")),
		pod("crashy", unmanaged, ctr("a", "100m", "10Mi"), ctr("b", "200m", "")),
		pod("crashy-2", unmanaged, ctr("a", "", "20Mi")),
		pod("done", unmanaged, ctr("a", "4", "4Gi")),
		unscheduled,
	}
	for _, p := range pods {
		if _, err := client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create pod %s: %v", p.Name, err)
		}
	}
	waiting := func(name, reason string, restarts int32) corev1.ContainerStatus {
		return corev1.ContainerStatus{
			Name: name, Image: name + ":1", RestartCount: restarts,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "back-off"}},
		}
	}
	setStatus(t, client, ns, "crashy", corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
		waiting("a", "CrashLoopBackOff", 5), waiting("b", "ImagePullBackOff", 0),
	}})
	setStatus(t, client, ns, "crashy-2", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
		waiting("a", "CrashLoopBackOff", 2),
	}})
	setStatus(t, client, ns, "done", corev1.PodStatus{Phase: corev1.PodSucceeded, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "a", Image: "a:1", RestartCount: 1,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}},
	}}})

	const mi = 1 << 20
	want := map[string]float64{
		// web: 250m + 500m, 64Mi + 128Mi; its init container is not counted.
		`k8s.node.cpu.request{} k8s.node.name=` + kwok0:    0.75,
		`k8s.node.memory.request{} k8s.node.name=` + kwok0: 192 * mi,
		`k8s.node.cpu.request{} k8s.node.name=` + kwok1:    1,
		`k8s.node.memory.request{} k8s.node.name=` + kwok1: 1024 * mi,
		// crashy and crashy-2; done has Succeeded and holds nothing.
		`k8s.node.cpu.request{} k8s.node.name=` + unmanaged:    0.3,
		`k8s.node.memory.request{} k8s.node.name=` + unmanaged: 30 * mi,
		// unscheduled is bound to no node and counts nowhere.
		`k8s.cluster.cpu.request{}`:    2.05,
		`k8s.cluster.memory.request{}`: (192 + 1024 + 30) * mi,
		// 5 + 0 (crashy) + 2 (crashy-2) + 1 (done); kwok's pods restart 0 times.
		`k8s.cluster.container.restarts{k8s.namespace.name=team-r}`:                                             8,
		`k8s.cluster.container.restarts{k8s.namespace.name=default}`:                                            0,
		`k8s.cluster.container.waiting{k8s.container.status.reason=CrashLoopBackOff,k8s.namespace.name=team-r}`: 2,
		`k8s.cluster.container.waiting{k8s.container.status.reason=ImagePullBackOff,k8s.namespace.name=team-r}`: 1,
		`k8s.cluster.pod.count{k8s.namespace.name=team-r,k8s.pod.status.phase=running}`:                         3,
		`k8s.cluster.pod.count{k8s.namespace.name=team-r,k8s.pod.status.phase=pending}`:                         2,
		`k8s.cluster.pod.count{k8s.namespace.name=team-r,k8s.pod.status.phase=succeeded}`:                       1,
	}
	waitFor(t, sink, want)

	// Only non-zero combinations of waiting containers are sent: kwok's pods
	// run, so the two above are all.
	all := sink.AllMetrics()
	var waitingSeries []string
	for k := range flatten(all[len(all)-1]) {
		if strings.HasPrefix(k, metricClusterWaiting+"{") {
			waitingSeries = append(waitingSeries, k)
		}
	}
	if len(waitingSeries) != 2 {
		t.Errorf("waiting series = %q, want the two of team-r", waitingSeries)
	}
	// kwok leaves the status written above alone (it manages only annotated
	// nodes): read back, it is still what the test wrote, and the metrics
	// still say so on a later scrape.
	for _, name := range []string{"crashy", "crashy-2"} {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].State.Waiting == nil ||
			p.Status.ContainerStatuses[0].State.Waiting.Reason != "CrashLoopBackOff" {
			t.Errorf("pod %s's status was rewritten: %+v", name, p.Status.ContainerStatuses)
		}
	}
	scrapes := len(sink.AllMetrics())
	waitScrapes(t, sink, scrapes+3)
	waitFor(t, sink, want)

	// Deleting the crashing pods clears their waiting series and restarts.
	for _, name := range []string{"crashy", "crashy-2"} {
		if err := client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, sink, map[string]float64{
		`k8s.cluster.container.restarts{k8s.namespace.name=team-r}`: 1,
		`k8s.node.cpu.request{} k8s.node.name=` + unmanaged:         0,
		`k8s.cluster.cpu.request{}`:                                 1.75,
	})
	all = sink.AllMetrics()
	for k := range flatten(all[len(all)-1]) {
		if strings.HasPrefix(k, metricClusterWaiting+"{") {
			t.Errorf("%s still sent after the waiting containers' pods were deleted", k)
		}
	}
}

// ctr is a container requesting cpu and memory ("" requests none).
func ctr(name, cpu, memory string) corev1.Container {
	c := corev1.Container{Name: name, Image: name + ":1", Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{}}}
	if cpu != "" {
		c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if memory != "" {
		c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse(memory)
	}
	return c
}

func pod(name, node string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{NodeName: node, Containers: containers, AutomountServiceAccountToken: new(false)},
	}
}

// setStatus writes a pod's status through the status subresource.
func setStatus(t *testing.T, client kubernetes.Interface, ns, name string, status corev1.PodStatus) {
	t.Helper()
	ctx := context.Background()
	p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p.Status = status
	if _, err := client.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update status of pod %s: %v", name, err)
	}
}

// waitServiceAccount waits for the controller manager to create ns's default
// ServiceAccount, without which pods are refused.
func waitServiceAccount(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("default ServiceAccount of %s: %v", ns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitScrapes waits until the sink holds n scrapes.
func waitScrapes(t *testing.T, sink *consumertest.MetricsSink, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(sink.AllMetrics()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d scrapes, want %d", len(sink.AllMetrics()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlimPodKeepsWhatScrapesRead checks what the pod informer's transform
// keeps of a pod: the figures the scrape adds up.
func TestSlimPodKeepsWhatScrapesRead(t *testing.T) {
	full := pod("p", "n1", ctr("a", "250m", "64Mi"), ctr("b", "1500m", "1Gi"), ctr("c", "", ""))
	full.Namespace, full.UID, full.ResourceVersion = "ns", "uid-1", "7"
	full.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	full.Labels = map[string]string{"app": "p"}
	full.Spec.InitContainers = []corev1.Container{ctr("init", "4", "4Gi")}
	full.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}
	full.Spec.Containers[0].Resources.Requests[corev1.ResourceEphemeralStorage] = resource.MustParse("1Gi")
	full.Status = corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{
		{Name: "a", RestartCount: 3, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
		{Name: "b", RestartCount: 1, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "long"}}},
		{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}},
	}}
	obj, err := slimPod(full)
	if err != nil {
		t.Fatal(err)
	}
	got := obj.(*podInfo)
	want := &podInfo{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "uid-1", ResourceVersion: "7"},
		nodeName:   "n1", phase: corev1.PodRunning,
		requests: requests{cpuMilli: 1750, memory: (64 + 1024) << 20},
		restarts: 4, waiting: []string{"CrashLoopBackOff", "ImagePullBackOff"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("slimPod = %+v, want %+v", got, want)
	}
	tombstone := cache.DeletedFinalStateUnknown{Key: "ns/p", Obj: got}
	if obj, _ := slimPod(tombstone); obj != tombstone {
		t.Errorf("slimPod(tombstone) = %v, want the tombstone", obj)
	}
}

// TestPrometheusNames checks the Prometheus name of every metric the scrape
// emits, translated as the hub exporter does (exporters/hub/translate.go:
// otlptranslator with metric suffixes), against the names the README lists.
func TestPrometheusNames(t *testing.T) {
	want := map[string]string{
		metricNodeCondition:          "k8s_node_condition_status",
		metricNodeAllocatableCPU:     "k8s_node_allocatable_cpu",
		metricNodeAllocatableMem:     "k8s_node_allocatable_memory_bytes",
		metricNodeAllocatablePods:    "k8s_node_allocatable_pods",
		metricNodeCapacityCPU:        "k8s_node_capacity_cpu",
		metricNodeCapacityMem:        "k8s_node_capacity_memory_bytes",
		metricNodeCapacityPods:       "k8s_node_capacity_pods",
		metricNodeCPURequest:         "k8s_node_cpu_request",
		metricNodeMemoryRequest:      "k8s_node_memory_request_bytes",
		metricClusterNodes:           "k8s_cluster_node_count",
		metricClusterAllocatableCPU:  "k8s_cluster_allocatable_cpu",
		metricClusterAllocatableMem:  "k8s_cluster_allocatable_memory_bytes",
		metricClusterAllocatablePods: "k8s_cluster_allocatable_pods",
		metricClusterCapacityCPU:     "k8s_cluster_capacity_cpu",
		metricClusterCapacityMem:     "k8s_cluster_capacity_memory_bytes",
		metricClusterCapacityPods:    "k8s_cluster_capacity_pods",
		metricClusterPods:            "k8s_cluster_pod_count",
		metricClusterInfo:            "k8s_cluster_info",
		metricClusterCPURequest:      "k8s_cluster_cpu_request",
		metricClusterMemoryRequest:   "k8s_cluster_memory_request_bytes",
		metricClusterRestarts:        "k8s_cluster_container_restarts",
		metricClusterWaiting:         "k8s_cluster_container_waiting",
		metricNamespacePhase:         "k8s_namespace_phase",
		metricDeploymentDesired:      "k8s_deployment_pod_desired",
		metricDeploymentAvailable:    "k8s_deployment_pod_available",
		metricStatefulSetDesired:     "k8s_statefulset_pod_desired",
		metricStatefulSetReady:       "k8s_statefulset_pod_ready",
		metricDaemonSetDesired:       "k8s_daemonset_node_desired_scheduled",
		metricDaemonSetCurrent:       "k8s_daemonset_node_current_scheduled",
		metricDaemonSetReady:         "k8s_daemonset_node_ready",
		metricPodPhase:               "k8s_pod_status_phase",
	}
	one := int32(1)
	waitingPod := &podInfo{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"}, nodeName: "n", waiting: []string{"CrashLoopBackOff"}}
	snap := &snapshot{
		nodes:      []*corev1.Node{{ObjectMeta: metav1.ObjectMeta{Name: "n"}}},
		namespaces: []*corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}},
		pods:       []*podInfo{waitingPod},
		version:    &version.Info{GitVersion: "v1.35.4"},
	}
	snap.deployments = []*appsv1.Deployment{{ObjectMeta: metav1.ObjectMeta{Name: "d"}, Spec: appsv1.DeploymentSpec{Replicas: &one}}}
	snap.statefulSets = []*appsv1.StatefulSet{{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Spec: appsv1.StatefulSetSpec{Replicas: &one}}}
	snap.daemonSets = []*appsv1.DaemonSet{{ObjectMeta: metav1.ObjectMeta{Name: "ds"}}}
	md := buildMetrics(snap, true, pcommon.NewTimestampFromTime(time.Now()))

	namer := otlptranslator.MetricNamer{WithMetricSuffixes: true}
	seen := map[string]bool{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Type() != pmetric.MetricTypeGauge {
					t.Errorf("%s is a %s, want a gauge", m.Name(), m.Type())
				}
				got, err := namer.Build(otlptranslator.Metric{Name: m.Name(), Unit: m.Unit(), Type: otlptranslator.MetricTypeGauge})
				if err != nil {
					t.Fatal(err)
				}
				if w, ok := want[m.Name()]; !ok {
					t.Errorf("%s (Prometheus %s) is not in the test's list", m.Name(), got)
				} else if got != w {
					t.Errorf("%s (unit %q) translates to %s, want %s", m.Name(), m.Unit(), got, w)
				}
				seen[m.Name()] = true
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("%s not emitted", name)
		}
	}
}

// TestSlimObjectsKeepWhatScrapesRead checks that every transform keeps what
// the scrape reads: the metrics of slimmed objects are those of full ones.
func TestSlimObjectsKeepWhatScrapesRead(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate}}
	meta := func(name, ns string) metav1.ObjectMeta {
		return metav1.ObjectMeta{
			Name: name, Namespace: ns, UID: types.UID("uid-" + name), ResourceVersion: "42", ManagedFields: managed,
			Labels: map[string]string{"app": name}, Annotations: map[string]string{"note": "long text"},
		}
	}
	resources := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("7500m"), corev1.ResourceMemory: resource.MustParse("31Gi"), corev1.ResourcePods: resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"), "hugepages-2Mi": resource.MustParse("0"),
	}
	two, three := int32(2), int32(3)
	full := &snapshot{
		nodes: []*corev1.Node{{
			ObjectMeta: meta("n1", ""),
			Status: corev1.NodeStatus{
				Capacity: resources, Allocatable: resources,
				Conditions: []corev1.NodeCondition{
					{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
					{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory"},
				},
				Images: []corev1.ContainerImage{{Names: []string{"registry.example/app@sha256:0123"}, SizeBytes: 1 << 20}},
			},
		}},
		namespaces: []*corev1.Namespace{{ObjectMeta: meta("ns", ""), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}},
		pods:       slimEach[*podInfo](t, []*corev1.Pod{pod("p", "n1", ctr("a", "250m", "64Mi"))}, slimPod),
		deployments: []*appsv1.Deployment{{
			ObjectMeta: meta("d", "ns"), Spec: appsv1.DeploymentSpec{Replicas: &three},
			Status: appsv1.DeploymentStatus{Replicas: 3, AvailableReplicas: 2, ReadyReplicas: 2},
		}},
		statefulSets: []*appsv1.StatefulSet{{
			ObjectMeta: meta("s", "ns"), Spec: appsv1.StatefulSetSpec{Replicas: &two},
			Status: appsv1.StatefulSetStatus{Replicas: 2, ReadyReplicas: 1},
		}},
		daemonSets: []*appsv1.DaemonSet{{
			ObjectMeta: meta("ds", "ns"),
			Status:     appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, NumberReady: 1, NumberAvailable: 1},
		}},
		version: &version.Info{GitVersion: "v1.35.4", Platform: "linux/amd64"},
	}
	full.pods[0].Namespace = "ns"

	slim := &snapshot{
		nodes:        slimEach[*corev1.Node](t, full.nodes, slimNode),
		namespaces:   slimEach[*corev1.Namespace](t, full.namespaces, slimNamespace),
		pods:         full.pods,
		deployments:  slimEach[*appsv1.Deployment](t, full.deployments, slimDeployment),
		statefulSets: slimEach[*appsv1.StatefulSet](t, full.statefulSets, slimStatefulSet),
		daemonSets:   slimEach[*appsv1.DaemonSet](t, full.daemonSets, slimDaemonSet),
		version:      full.version,
	}

	now := pcommon.NewTimestampFromTime(time.Now())
	want, got := flatten(buildMetrics(full, true, now)), flatten(buildMetrics(slim, true, now))
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v) from slim objects, %v from full ones", k, g, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d points from slim objects, %d from full ones", len(got), len(want))
	}
	if n := slim.nodes[0]; len(n.ManagedFields) != 0 || len(n.Labels) != 0 || len(n.Status.Images) != 0 || len(n.Status.Capacity) != 3 || n.Status.Conditions[0].Message != "" {
		t.Errorf("slim node keeps unread fields: %+v", n)
	}
	if d := slim.deployments[0]; len(d.ManagedFields) != 0 || len(d.Annotations) != 0 || d.Status.Replicas != 0 {
		t.Errorf("slim deployment keeps unread fields: %+v", d)
	}
}

// slimEach applies an informer's transform to objs.
func slimEach[Out, In any](t *testing.T, objs []In, transform func(any) (any, error)) []Out {
	t.Helper()
	out := make([]Out, len(objs))
	for i, o := range objs {
		slim, err := transform(o)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = slim.(Out)
	}
	return out
}
