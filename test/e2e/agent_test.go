package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentShipsInventory runs the fleetpulse-agent binary with its built-in
// pipeline against a test-bed cluster, sending to a real Prometheus
// remote-write receiver, and checks the cluster's node count arrives under
// the cluster's name, and follows the cluster when nodes are added.
func TestAgentShipsInventory(t *testing.T) {
	t.Parallel()
	cluster := testbed.StartClusters(t, "agent", 1, testbed.ClusterOptions{Nodes: 3})[0]
	prom := testbed.StartPrometheus(t, testbed.PrometheusOptions{})
	agentBin := buildBinary(t, "fleetpulse-agent")

	agent := exec.Command(agentBin,
		"--hub="+prom.URL, "--cluster-name=cluster-a", "--cluster-set=dev",
		"--kubeconfig="+cluster.KubeconfigPath, "--state-dir="+t.TempDir(),
		"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
		"--metrics-address="+testbed.FreeAddr(t), "--self-telemetry-address="+testbed.FreeAddr(t))
	agent.Stderr = processLog(t, "agent")
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })

	c, err := promapi.NewClient(promapi.Config{Address: prom.URL})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(c)
	query := `k8s_cluster_node_count{k8s_cluster_name="cluster-a",fleetpulse_cluster_set="dev",k8s_node_condition_ready="true"}`
	waitForValue(t, api, query, 3)

	client := kubernetes.NewForConfigOrDie(cluster.RESTConfig)
	for i := range 2 {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("agent-extra-%d", i),
			Annotations: map[string]string{testbed.KwokNodeAnnotation: "fake"},
		}}
		if _, err := client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitForValue(t, api, query, 5)
	waitForValue(t, api, `count(k8s_node_allocatable_cpu{k8s_cluster_name="cluster-a"})`, 5)
	waitForValue(t, api, `k8s_cluster_info{k8s_cluster_name="cluster-a",k8s_cluster_version="v1.35.4"}`, 1)
	waitForValue(t, api, `sum(k8s_node_allocatable_memory_bytes{k8s_cluster_name="cluster-a"}) > bool 0`, 1)
	// Requests and restarts under the names the README lists (no pods run).
	waitForValue(t, api, `count(k8s_node_cpu_request{k8s_cluster_name="cluster-a"})`, 5)
	waitForValue(t, api, `count(k8s_node_memory_request_bytes{k8s_cluster_name="cluster-a"})`, 5)
	waitForValue(t, api, `k8s_cluster_cpu_request{k8s_cluster_name="cluster-a"} + k8s_cluster_memory_request_bytes{k8s_cluster_name="cluster-a"}`, 0)
	waitForValue(t, api, `k8s_cluster_container_restarts{k8s_cluster_name="cluster-a",k8s_namespace_name="default"}`, 0)

	// The agent's own telemetry reaches the hub too, under the cluster's name.
	// One queue per signal: metrics and logs.
	waitForValue(t, api, `count(otelcol_exporter_queue_size{k8s_cluster_name="cluster-a",exporter="fleetpulse_hub"})`, 2)
	waitForValue(t, api, `sum(otelcol_exporter_sent_metric_points_total{k8s_cluster_name="cluster-a"}) > bool 0`, 1)
}

func waitForValue(t *testing.T, api promv1.API, query string, want float64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	last := "no answer"
	for time.Now().Before(deadline) {
		v, _, err := api.Query(context.Background(), query, time.Now())
		switch {
		case err != nil:
			last = err.Error()
		case v.Type() == model.ValVector && len(v.(model.Vector)) == 1:
			got := float64(v.(model.Vector)[0].Value)
			if got == want {
				return
			}
			last = fmt.Sprint(got)
		default:
			last = v.String()
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: last %s, want %v", query, last, want)
}

// buildBinary builds ./cmd/<name> into a temporary folder.
func buildBinary(t *testing.T, name string) string {
	t.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), name)
	build := exec.Command("go", "build", "-tags", "slicelabels", "-o", bin, "./cmd/"+name)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}
