package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentsReportToHub runs a hub and one agent per test-bed cluster, each
// agent holding a client certificate named after its cluster, and asks the
// hub with promtool, as a user would, for each cluster's Ready node count.
func TestAgentsReportToHub(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not on PATH (Debian package prometheus; .ci/run installs it): %v", err)
	}
	clusters := testbed.StartClusters(t, "fleet", 2, testbed.ClusterOptions{Nodes: 2})
	// Make the clusters differ: a third node in the second one.
	extra := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "fleet-1-node-extra", Annotations: map[string]string{testbed.KwokNodeAnnotation: "fake"}}}
	if _, err := kubernetes.NewForConfigOrDie(clusters[1].RESTConfig).CoreV1().Nodes().Create(context.Background(), extra, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ca := testbed.NewCA(t, "fleet-agents")
	httpURL, agentsURL := startHub(t, ca, nil)
	agentBin := buildBinary(t, "fleetpulse-agent")
	for i, c := range clusters {
		name := fmt.Sprintf("cluster-%c", 'a'+i)
		cert, key := ca.Client(name)
		agent := exec.Command(agentBin,
			"--hub="+agentsURL, "--hub-ca-file="+ca.CertFile, "--cert-file="+cert, "--key-file="+key,
			"--cluster-name="+name, "--kubeconfig="+c.KubeconfigPath, "--state-dir="+t.TempDir(),
			"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
			"--metrics-address="+testbed.FreeAddr(t), "--self-telemetry-address="+testbed.FreeAddr(t))
		agent.Stderr = testWriter{t}
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	}

	query := `count by (cluster) (k8s_node_condition_status{k8s_node_condition_type="Ready",k8s_node_condition_status="true"})`
	want := []string{`{cluster="cluster-a"} => 2`, `{cluster="cluster-b"} => 3`}
	deadline := time.Now().Add(90 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out, err = exec.Command(promtool, "query", "instant", httpURL, query).CombinedOutput()
		if err == nil && containsAll(string(out), want) {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("promtool query instant %s '%s':\n%s\nwant lines %q (err %v)", httpURL, query, out, want, err)
}

// startHub runs a hub in this process with a fresh store and an agent
// listener that trusts ca, and stops it when the test ends.
func startHub(t *testing.T, ca *testbed.CA, configure func(*hub.Config)) (httpURL, agentsURL string) {
	t.Helper()
	cfg := hub.DefaultConfig()
	if configure != nil {
		configure(&cfg)
	}
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("hub")
	cfg.AgentTLS.ClientCAFile = ca.CertFile
	cfg.Store.Dir = t.TempDir()
	h, err := hub.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for h.Addr() == nil || h.AgentAddr() == nil {
		select {
		case err := <-done:
			t.Fatalf("hub stopped: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("hub did not listen within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + h.Addr().String(), "https://" + h.AgentAddr().String()
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
