package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	hubreg "github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentHealthShowsWorkApplierFailure runs the agent binary, joined to a
// real hub, with its work applier reaching the cluster under an identity
// the apiserver refuses: the agent keeps running and heartbeating, and its
// health endpoint shows the applier's failure (the fleetpulse_work
// extension in a recoverable error naming its records) next to a healthy
// registration, where the failure used to be only a retry in the logs.
func TestAgentHealthShowsWorkApplierFailure(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "agenthealth-hub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	cluster := testbed.StartClusters(t, "agenthealth", 1, testbed.ClusterOptions{Nodes: 1})[0]
	ca := testbed.NewCA(t, "agenthealth-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 1
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := hubreg.NewTokens(kube, "fleetpulse-system").Create(ctx, hubreg.TokenOptions{TTL: time.Hour, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	const name = "agenthealth-a"
	health := testbed.FreeAddr(t)
	agent := startJoiningAgent(t, buildBinary(t, "fleetpulse-agent"), token, []string{
		"--hub=" + hb.AgentsURL, "--hub-ca-hash=" + caPin(t, ca.CertFile), "--cluster-name=" + name,
		"--kubeconfig=" + cluster.KubeconfigPath, "--state-dir=" + t.TempDir(), "--collection-interval=1s",
		"--health-address=" + health,
		"--set=extensions.fleetpulse_work.kubeconfig=" + refusedKubeconfig(t, cluster.KubeconfigPath),
	})
	waitCondition(t, kube, name, fleetv1.ConditionAvailable, metav1.ConditionTrue)

	pollUntil(ctx, t, "the work applier's failure in the agent's health", func() (bool, string) {
		st, raw, err := agentHealth(ctx, health)
		if err != nil {
			return false, err.Error() + "\n" + agent.tail()
		}
		exts := st.Components["extensions"]
		if exts == nil {
			return false, raw
		}
		work, reg := exts.Components["extension:fleetpulse_work"], exts.Components["extension:fleetpulse_registration"]
		return work != nil && reg != nil && work.Status == "StatusRecoverableError" &&
			strings.Contains(work.Error, "cannot read the work records in namespace fleetpulse-agent") &&
			reg.Status == "StatusOK", raw
	})
	select {
	case <-agent.exited:
		t.Fatalf("the agent stopped (exit code %d) over its work applier's failure:\n%s", agent.code, agent.tail())
	default:
	}
	if strings.Contains(agent.logs(), token) {
		t.Errorf("the bootstrap token appears in the agent's logs")
	}
}

// componentHealth is healthcheckv2's verbose status of a component or a
// group of them.
type componentHealth struct {
	Healthy    bool                        `json:"healthy"`
	Status     string                      `json:"status"`
	Error      string                      `json:"error"`
	Components map[string]*componentHealth `json:"components"`
}

// agentHealth reads the agent's health with every component's status.
func agentHealth(ctx context.Context, addr string) (*componentHealth, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status?verbose", nil)
	if err != nil {
		return nil, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	var st componentHealth
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, string(body), err
	}
	return &st, string(body), nil
}

// refusedKubeconfig writes a copy of the kubeconfig at path whose users
// present a bearer token the apiserver does not know.
func refusedKubeconfig(t *testing.T, path string) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name := range cfg.AuthInfos {
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "refused"}
	}
	out := filepath.Join(t.TempDir(), "refused.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, out); err != nil {
		t.Fatal(err)
	}
	return out
}
