package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestNotReadyNodeAlertReachesAlertmanager: a cluster gains a NotReady node,
// the shipped FleetpulseNodesNotReady alert fires on the hub and arrives at a
// real Alertmanager labelled with the cluster; the node goes, the alert
// resolves.
func TestNotReadyNodeAlertReachesAlertmanager(t *testing.T) {
	t.Parallel()
	amURL := startAlertmanager(t)
	cluster := testbed.StartClusters(t, "alerts", 1, testbed.ClusterOptions{Nodes: 2})[0]
	ca := testbed.NewCA(t, "alerts-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.Alerting.AlertmanagerURLs = []string{amURL}
		c.Alerting.EvaluationInterval = time.Second
		c.Alerting.ExternalLabels = map[string]string{"hub": "e2e"}
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	cert, key := ca.Client("cluster-a")
	agent := exec.Command(buildBinary(t, "fleetpulse-agent"),
		"--hub="+agentsURL, "--hub-ca-file="+ca.CertFile, "--cert-file="+cert, "--key-file="+key,
		"--cluster-name=cluster-a", "--kubeconfig="+cluster.KubeconfigPath, "--state-dir="+t.TempDir(),
		"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
		"--metrics-address="+testbed.FreeAddr(t), "--self-telemetry-address="+testbed.FreeAddr(t))
	agent.Stderr = processLog(t, "agent")
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })

	// A node kwok does not manage, reporting NotReady: a lost kubelet.
	client := kubernetes.NewForConfigOrDie(cluster.RESTConfig)
	lost := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "alerts-lost-node"},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionFalse, Reason: "KubeletStopped", LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}}},
	}
	if _, err := client.CoreV1().Nodes().Create(context.Background(), lost, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	alerts := waitAlerts(t, amURL, func(a []amAlert) bool { return len(a) == 1 })
	if alerts[0].Labels["cluster"] != "cluster-a" || alerts[0].Labels["severity"] != "warning" || alerts[0].Labels["hub"] != "e2e" || alerts[0].Annotations["runbook_url"] == "" {
		t.Errorf("alert at Alertmanager: %+v", alerts[0])
	}
	// The alert links back to the hub, absolutely, and the link answers.
	if !strings.HasPrefix(alerts[0].GeneratorURL, httpURL+"/graph?") {
		t.Errorf("alert's generator URL %q, want %s/graph?...", alerts[0].GeneratorURL, httpURL)
	} else if resp, err := http.Get(alerts[0].GeneratorURL); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET the alert's generator URL %s: %v %v", alerts[0].GeneratorURL, err, resp)
	} else {
		resp.Body.Close()
	}
	if err := client.CoreV1().Nodes().Delete(context.Background(), lost.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitAlerts(t, amURL, func(a []amAlert) bool { return len(a) == 0 })
}

type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	GeneratorURL string            `json:"generatorURL"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
}

// waitAlerts polls Alertmanager's active FleetpulseNodesNotReady alerts until ok.
func waitAlerts(t *testing.T, amURL string, ok func([]amAlert) bool) []amAlert {
	t.Helper()
	return waitAlertsNamed(t, amURL, "FleetpulseNodesNotReady", ok)
}

// waitAlertsNamed polls Alertmanager's active alerts of one name until ok.
func waitAlertsNamed(t *testing.T, amURL, name string, ok func([]amAlert) bool) []amAlert {
	t.Helper()
	q := url.Values{"filter": {`alertname="` + name + `"`}, "active": {"true"}}
	deadline := time.Now().Add(90 * time.Second)
	var alerts []amAlert
	for time.Now().Before(deadline) {
		resp, err := http.Get(amURL + "/api/v2/alerts?" + q.Encode())
		if err == nil {
			alerts = nil
			_ = json.NewDecoder(resp.Body).Decode(&alerts)
			resp.Body.Close()
			if ok(alerts) {
				return alerts
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Alertmanager's %s alerts never reached the expected state; last: %+v", name, alerts)
	return nil
}

// startAlertmanager runs Debian's Alertmanager on a free loopback port.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	return startAlertmanagerWith(t, "route:\n  receiver: log\n  group_wait: 0s\nreceivers:\n  - name: log\n")
}

// startAlertmanagerWith runs Debian's Alertmanager with config (YAML) on a
// free loopback port.
func startAlertmanagerWith(t *testing.T, config string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatalf("prometheus-alertmanager not on PATH (Debian package; .ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := testbed.FreeAddr(t)
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+dir, "--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Stderr = processLog(t, "alertmanager")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	amURL := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(amURL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return amURL
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("Alertmanager not ready within 30s")
	return ""
}
