package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentsJoinWithBootstrapToken runs three real agents that hold nothing
// but a bootstrap token and the hub CA's pin: they register, are accepted by
// the token, turn Available with their cluster's inventory; a stopped agent
// turns Unknown and tainted within grace + one period and its heartbeat
// alert reaches Alertmanager; started again, it is Available and untainted.
func TestAgentsJoinWithBootstrapToken(t *testing.T) {
	t.Parallel()
	const period, grace = 2 * time.Second, 4 * time.Second
	amURL := startAlertmanager(t)
	cp := testbed.StartClusters(t, "joinhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "join", 3, testbed.ClusterOptions{Nodes: 1})
	// Make the clusters differ: cluster i has i+1 nodes.
	for i, c := range clusters {
		for n := range i {
			node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("join-%d-extra-%d", i, n), Annotations: map[string]string{testbed.KwokNodeAnnotation: "fake"}}}
			if _, err := kubernetes.NewForConfigOrDie(c.RESTConfig).CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ca := testbed.NewCA(t, "join-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = int32(period / time.Second)
		c.Registration.GracePeriods = int(grace / period)
		c.Registration.InventoryInterval = time.Second
		c.Alerting.AlertmanagerURLs = []string{amURL}
		c.Alerting.EvaluationInterval = time.Second
	}))
	agentsURL := hb.AgentsURL
	ctx := context.Background()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, "fleetpulse-system").Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	stateDirs := make([]string, len(clusters))
	agents := make([]*exec.Cmd, len(clusters))
	start := func(i int) {
		agents[i] = joinAgent(t, bin, agentsURL, token, pin, fmt.Sprintf("cluster-%d", i+1), clusters[i].KubeconfigPath, stateDirs[i])
	}
	for i := range clusters {
		stateDirs[i] = t.TempDir()
		start(i)
	}

	for i := range clusters {
		name := fmt.Sprintf("cluster-%d", i+1)
		waitCondition(t, kube, name, fleetv1.ConditionAvailable, metav1.ConditionTrue)
		mc := &fleetv1.ManagedCluster{}
		_ = kube.Get(ctx, client.ObjectKey{Name: name}, mc)
		c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionAvailable)
		if took := c.LastTransitionTime.Sub(mc.CreationTimestamp.Time); took > 2*period+time.Second {
			t.Errorf("%s Available %s after it registered, want within two heartbeat periods (%s; the API keeps whole seconds)", name, took, 2*period)
		}
		waitInventory(t, kube, name, int32(i+1))
	}

	// Stop cluster-2's agent: Unknown and tainted within grace + one period,
	// and the heartbeat alert reaches Alertmanager with the cluster label.
	// The clock starts when the agent has exited: it may take seconds to
	// flush its pipelines after SIGTERM, heartbeating until it does.
	_ = agents[1].Process.Signal(syscall.SIGTERM)
	_ = agents[1].Wait()
	stopped := time.Now()
	waitCondition(t, kube, "cluster-2", fleetv1.ConditionAvailable, metav1.ConditionUnknown)
	took := time.Since(stopped)
	t.Logf("cluster-2 Unknown %s after its agent stopped (grace %s, period %s)", took.Round(100*time.Millisecond), grace, period)
	if took > grace+period {
		t.Errorf("cluster-2 went Unknown %s after its agent stopped, want within grace + one period (%s)", took, grace+period)
	}
	waitTaint(t, kube, "cluster-2", fleetv1.TaintUnreachable)
	alerts := waitAlertsNamed(t, amURL, "FleetpulseClusterHeartbeatMissing", func(a []amAlert) bool { return len(a) == 1 })
	if alerts[0].Labels["cluster"] != "cluster-2" {
		t.Errorf("heartbeat alert at Alertmanager: %+v, want cluster-2's", alerts[0])
	}
	for _, other := range []string{"cluster-1", "cluster-3"} {
		waitCondition(t, kube, other, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}

	// Start it again on its state: Available and untainted.
	start(1)
	waitCondition(t, kube, "cluster-2", fleetv1.ConditionAvailable, metav1.ConditionTrue)
	deadline := time.Now().Add(30 * time.Second)
	for {
		mc := &fleetv1.ManagedCluster{}
		_ = kube.Get(ctx, client.ObjectKey{Name: "cluster-2"}, mc)
		if len(mc.Spec.Taints) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster-2 still tainted %+v after it came back", mc.Spec.Taints)
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitAlertsNamed(t, amURL, "FleetpulseClusterHeartbeatMissing", func(a []amAlert) bool { return len(a) == 0 })
}

// joinAgent runs a real agent joining with a bootstrap token, with flags
// added to the tests' own, until the test ends.
func joinAgent(t *testing.T, bin, hubURL, token, pin, name, kubeconfig, stateDir string, flags ...string) *exec.Cmd {
	t.Helper()
	agent := exec.Command(bin, append([]string{
		"--hub=" + hubURL, "--hub-ca-hash=" + pin, "--cluster-name=" + name, "--kubeconfig=" + kubeconfig, "--state-dir=" + stateDir,
		"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
		"--metrics-address=" + testbed.FreeAddr(t), "--self-telemetry-address=" + testbed.FreeAddr(t)}, flags...)...)
	agent.Env = append(agent.Environ(), "FLEETPULSE_BOOTSTRAP_TOKEN="+token)
	agent.Stderr = processLog(t, "agent-"+name)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	return agent
}

// waitInventory waits until the cluster's status carries its telemetry's
// inventory: its version and node count.
func waitInventory(t *testing.T, kube client.Client, name string, nodes int32) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mc := &fleetv1.ManagedCluster{}
		_ = kube.Get(context.Background(), client.ObjectKey{Name: name}, mc)
		st := mc.Status
		if st.Version.Kubernetes == "v1.35.4" && st.Nodes.Total == nodes && st.Nodes.Ready == nodes &&
			!st.Allocatable.Cpu().IsZero() && strings.Contains(st.Platform, "/") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s status %+v, want v1.35.4 with %d Ready nodes and allocatable CPU", name, st, nodes)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
