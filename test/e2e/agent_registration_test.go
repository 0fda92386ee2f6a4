package e2e

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	hubreg "github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentJoinsWithBootstrapToken runs the fleetpulse-agent binary against
// a real hub on a real control plane: it joins with a bootstrap token and
// the CA's pin, waits while the cluster is pending, gets its certificate
// once an administrator accepts the cluster, heartbeats the cluster to
// Available and ships its telemetry (its own registration metrics
// included) over the issued certificate; a restart reuses the stored
// credentials; deleting the ManagedCluster stops the agent, which removes
// its credentials.
func TestAgentJoinsWithBootstrapToken(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "agentjoin-hub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	cluster := testbed.StartClusters(t, "agentjoin", 1, testbed.ClusterOptions{Nodes: 2})[0]
	ca := testbed.NewCA(t, "agentjoin-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 1
		c.Registration.InventoryInterval = time.Second
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := hubreg.NewTokens(kube, "fleetpulse-system").Create(ctx, hubreg.TokenOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	state := t.TempDir()
	const name = "agentjoin-a"
	args := []string{
		"--hub=" + agentsURL, "--hub-ca-hash=" + pin, "--cluster-name=" + name,
		"--kubeconfig=" + cluster.KubeconfigPath, "--state-dir=" + state,
		"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
	}

	// Join: pending until accepted.
	agent := startJoiningAgent(t, bin, token, args)
	pollUntil(ctx, t, "the agent waiting for acceptance", func() (bool, string) {
		return strings.Contains(agent.logs(), "waiting for the hub to accept cluster "+name), agent.tail()
	})
	mc := &fleetv1.ManagedCluster{}
	if err := kube.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil || mc.Spec.Accepted {
		t.Fatalf("ManagedCluster %s while pending: accepted %v, err %v", name, mc.Spec.Accepted, err)
	}
	if err := kube.Patch(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name}},
		client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"accepted":true}}`))); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "ManagedCluster Available from the agent's heartbeats", func() (bool, string) {
		mc := &fleetv1.ManagedCluster{}
		if err := kube.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionAvailable)
		return c != nil && c.Status == metav1.ConditionTrue, agent.tail()
	})
	creds := filepath.Join(state, "credentials")
	if fi, err := os.Stat(filepath.Join(creds, "tls.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stored key: %v", err)
	}
	if n := strings.Count(agent.logs(), "waiting for the hub to accept"); n != 1 {
		t.Errorf("the wait was logged %d times, want once", n)
	}

	// Telemetry over the issued certificate, the registration's metrics included.
	c, err := promapi.NewClient(promapi.Config{Address: httpURL})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(c)
	waitForValue(t, api, `k8s_cluster_node_count{cluster="`+name+`",k8s_node_condition_ready="true"}`, 2)
	waitForValue(t, api, `fleetpulse_agent_heartbeats_total{cluster="`+name+`",result="ok"} > bool 0`, 1)
	waitForValue(t, api, `fleetpulse_agent_certificate_expiry_timestamp_seconds{cluster="`+name+`"} > bool time()`, 1)
	waitForValue(t, api, `fleetpulse_agent_registrations_total{cluster="`+name+`",result="pending"} > bool 0`, 1)

	// SIGTERM stops the agent cleanly; a restart without the token uses the
	// stored credentials.
	if code := agent.stop(t); code != 0 {
		t.Errorf("the agent exited %d on SIGTERM, want 0:\n%s", code, agent.tail())
	}
	agent = startJoiningAgent(t, bin, "", args)
	pollUntil(ctx, t, "the restarted agent heartbeating", func() (bool, string) {
		return strings.Contains(agent.logs(), "using the stored credentials"), agent.tail()
	})
	waitForValue(t, api, `fleetpulse_agent_heartbeats_total{cluster="`+name+`",result="ok"} > bool 0`, 1)
	if strings.Contains(agent.logs(), "joining the hub") {
		t.Errorf("the restarted agent joined again:\n%s", agent.tail())
	}

	// Deregistration stops the agent, which forgets its credentials.
	if err := kube.Delete(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	select {
	case <-agent.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the agent still runs 60s after its ManagedCluster was deleted:\n%s", agent.tail())
	}
	if agent.code == 0 {
		t.Errorf("the deregistered agent exited 0")
	}
	if !strings.Contains(agent.logs(), "cluster "+name+" was deregistered by the hub") {
		t.Errorf("no deregistration message:\n%s", agent.tail())
	}
	if _, err := os.Stat(creds); !os.IsNotExist(err) {
		t.Errorf("credentials still in %s: %v", creds, err)
	}
	if strings.Contains(agent.logs(), token) {
		t.Errorf("the bootstrap token appears in the agent's logs")
	}
}

// caPin returns the agentapi.CAHash of a PEM CA certificate file.
func caPin(t *testing.T, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s holds no PEM", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return agentapi.CAHash(cert)
}

// joiningAgent is a running fleetpulse-agent whose stderr is kept.
type joiningAgent struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	buf    bytes.Buffer
	exited chan struct{}
	code   int
}

func (a *joiningAgent) Write(p []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.Write(p)
}

func (a *joiningAgent) logs() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.buf.String()
}

// tail is the end of the logs, for failure messages.
func (a *joiningAgent) tail() string {
	l := a.logs()
	if len(l) > 4000 {
		l = "…" + l[len(l)-4000:]
	}
	return l
}

// stop sends SIGTERM and returns the exit code.
func (a *joiningAgent) stop(t *testing.T) int {
	t.Helper()
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the agent did not stop within 30s of SIGTERM:\n%s", a.tail())
	}
	return a.code
}

// startJoiningAgent runs the agent with the bootstrap token in its
// environment (empty: none) until it exits or the test ends.
func startJoiningAgent(t *testing.T, bin, token string, args []string) *joiningAgent {
	t.Helper()
	a := &joiningAgent{exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append(args, "--metrics-address="+testbed.FreeAddr(t), "--self-telemetry-address="+testbed.FreeAddr(t))...)
	a.cmd.Env = append(os.Environ(), "FLEETPULSE_BOOTSTRAP_TOKEN="+token)
	a.cmd.Stderr = io.MultiWriter(a, processLog(t, "agent"))
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := a.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			a.code = ee.ExitCode()
		}
		close(a.exited)
	}()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.exited
	})
	return a
}
