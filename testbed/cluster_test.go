package testbed

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// TestStopLeavesNothingBehind starts a cluster, checks that its kubeconfig
// file works on its own and the apiserver reports the stamped version, then
// stops it and checks that every process is gone and the directory removed.
func TestStopLeavesNothingBehind(t *testing.T) {
	t.Parallel()
	c := StartClusters(t, "stop", 1, ClusterOptions{Nodes: 1})[0]

	cfg, err := clientcmd.BuildConfigFromFlags("", c.KubeconfigPath)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", c.KubeconfigPath, err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)
	v, err := client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version through the kubeconfig file: %v", err)
	}
	if v.GitVersion != KubernetesVersion {
		t.Errorf("apiserver reports version %q, want %q", v.GitVersion, KubernetesVersion)
	}
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("list nodes: %d nodes, err %v; want 1", len(nodes.Items), err)
	}

	pids := c.PIDs()
	if len(pids) != 5 {
		t.Errorf("cluster runs %d processes (%v), want etcd, apiserver, controller manager, scheduler and kwok", len(pids), pids)
	}
	c.Stop()
	c.Stop() // a second Stop is harmless
	deadline := time.Now().Add(5 * time.Second)
	for name, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Errorf("%s (pid %d) still running after Stop", name, pid)
		}
	}
	if _, err := os.Stat(c.Dir); !os.IsNotExist(err) {
		t.Errorf("working directory %s still there after Stop (stat: %v)", c.Dir, err)
	}
}

// TestControlPlaneOnly checks the hub-style cluster: no nodes, no scheduler,
// but namespaces and service accounts work.
func TestControlPlaneOnly(t *testing.T) {
	t.Parallel()
	c := StartClusters(t, "cp", 1, ClusterOptions{ControlPlaneOnly: true})[0]
	if got := len(c.PIDs()); got != 3 {
		t.Errorf("control plane runs %d processes (%v), want etcd, apiserver and controller manager", got, c.PIDs())
	}
	// The controller manager fills every namespace's default ServiceAccount
	// in its own time; StartCluster waited only for the default namespace's.
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := client.CoreV1().ServiceAccounts("kube-system").Get(context.Background(), "default", metav1.GetOptions{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kube-system default ServiceAccount: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestControlPlaneOnlyRefusesNodes(t *testing.T) {
	t.Parallel()
	_, err := StartCluster(context.Background(), &Binaries{}, ClusterOptions{Name: "bad", ControlPlaneOnly: true, Nodes: 2})
	if err == nil {
		t.Fatal("StartCluster accepted nodes for a control-plane-only cluster")
	}
}

func TestNodesHaveDistinctAddresses(t *testing.T) {
	t.Parallel()
	c := StartClusters(t, "addr", 1, ClusterOptions{Nodes: 3, NodeLabels: map[string]string{"zone": "a"}})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, n := range nodes.Items {
		var ip string
		for _, a := range n.Status.Addresses {
			if a.Type == "InternalIP" {
				ip = a.Address
			}
		}
		if ip == "" {
			t.Errorf("node %s has no InternalIP: %+v", n.Name, n.Status.Addresses)
		} else if other, dup := seen[ip]; dup {
			t.Errorf("nodes %s and %s share InternalIP %s", other, n.Name, ip)
		}
		seen[ip] = n.Name
		if n.Labels["zone"] != "a" {
			t.Errorf("node %s lacks label zone=a: %v", n.Name, n.Labels)
		}
		if cpu := n.Status.Allocatable.Cpu().String(); cpu != "8" {
			t.Errorf("node %s allocatable cpu = %s, want 8", n.Name, cpu)
		}
	}
}

// TestNodesStayReadyPastTheGracePeriod checks that kwok heartbeats its nodes
// (leases): with a short node-monitor grace period, nodes and the pods on
// them stay Ready well past it, and every node has a lease.
func TestNodesStayReadyPastTheGracePeriod(t *testing.T) {
	t.Parallel()
	const grace = 6 * time.Second
	c := StartClusters(t, "lease", 1, ClusterOptions{Nodes: 2, NodeMonitorGracePeriod: grace})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"},
		Spec:       corev1.PodSpec{NodeName: NodeName("lease-0", 0), Containers: []corev1.Container{{Name: "web", Image: "web:1"}}},
	}
	if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Watch the invariant over three grace periods, polling.
	end := time.Now().Add(3 * grace)
	podReadySeen := false
	for time.Now().Before(end) {
		if n, err := readyNodes(ctx, client); err != nil || n != 2 {
			t.Fatalf("%d Ready nodes (err %v) %s after start, want 2", n, err, time.Until(end))
		}
		p, err := client.CoreV1().Pods("default").Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ready := false
		for _, cond := range p.Status.Conditions {
			ready = ready || (cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue)
		}
		if podReadySeen && !ready {
			t.Fatalf("pod web went NotReady: %+v", p.Status.Conditions)
		}
		podReadySeen = podReadySeen || ready
		time.Sleep(500 * time.Millisecond)
	}
	if !podReadySeen {
		t.Error("pod web never became Ready")
	}
	leases, err := client.CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
	if err != nil || len(leases.Items) != 2 {
		t.Errorf("%d node leases (err %v), want 2", len(leases.Items), err)
	}
}

// TestCrashLoopStage: a pod labelled LabelCrashLoop runs, then crash-loops
// as a kubelet reports it — not ready, waiting in CrashLoopBackOff, its
// restart count growing — while an unlabelled pod stays Ready.
func TestCrashLoopStage(t *testing.T) {
	t.Parallel()
	c := StartClusters(t, "crash", 1, ClusterOptions{Nodes: 1})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	ctx := context.Background()
	for name, labels := range map[string]map[string]string{"bad": {LabelCrashLoop: "true"}, "good": nil} {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: labels},
			Spec:       corev1.PodSpec{NodeName: NodeName("crash-0", 0), Containers: []corev1.Container{{Name: "app", Image: "app:1"}}},
		}
		if _, err := client.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		bad, err := client.CoreV1().Pods("default").Get(ctx, "bad", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cs := bad.Status.ContainerStatuses; len(cs) == 1 && cs[0].RestartCount >= 2 && !cs[0].Ready &&
			cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == "CrashLoopBackOff" && bad.Status.Phase == corev1.PodRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod bad after 30s: phase %s, containers %+v", bad.Status.Phase, bad.Status.ContainerStatuses)
		}
		time.Sleep(200 * time.Millisecond)
	}
	good, err := client.CoreV1().Pods("default").Get(ctx, "good", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cs := good.Status.ContainerStatuses; len(cs) != 1 || !cs[0].Ready || cs[0].RestartCount != 0 {
		t.Errorf("pod good: %+v, want ready without restarts", cs)
	}
}
