package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// devTelemetry is the local fleet's telemetry: the hub in this process, with
// registration on the fleet's hub control plane, and one fleetpulse-agent
// per managed cluster holding only a bootstrap token and the pin of the
// hub's CA, as a real cluster joins.
type devTelemetry struct {
	HTTPURL, AgentsURL string
	// AlertmanagerURL is the fleet's Alertmanager, when its binary is there.
	AlertmanagerURL string
	alertmanager    *testbed.Process
	cancel          context.CancelFunc
	hubDone         chan error
	agents          map[string]*testbed.Process // by cluster
}

func startDevTelemetry(fleet *testbed.Fleet, dir, httpAddr, agentsAddr string, logger *slog.Logger) (*devTelemetry, error) {
	ca, err := testbed.NewCAIn(filepath.Join(dir, "hub", "agents-ca"), "fleetpulse-dev-agents")
	if err != nil {
		return nil, err
	}
	cfg := hub.DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = httpAddr, agentsAddr
	if cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile, err = ca.IssueServer("fleetpulse-hub"); err != nil {
		return nil, err
	}
	cfg.AgentTLS.ClientCAFile, cfg.AgentTLS.ClientCAKeyFile = ca.CertFile, ca.KeyFile
	cfg.ControlPlaneKubeconfig = fleet.Hub.KubeconfigPath
	// A short period so that a stopped agent shows within half a minute.
	cfg.Registration.DefaultHeartbeatPeriodSeconds = 10
	cfg.Store.Dir = filepath.Join(dir, "hub", "tsdb")
	am, amURL, err := startDevAlertmanager(filepath.Join(dir, "hub", "alertmanager"), logger)
	if err != nil {
		return nil, err
	}
	if amURL != "" {
		cfg.Alerting.AlertmanagerURLs = []string{amURL}
	}
	h, err := hub.New(cfg, logger.With("component", "hub"))
	if err != nil {
		if am != nil {
			am.Stop(10 * time.Second)
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &devTelemetry{cancel: cancel, hubDone: make(chan error, 1), agents: map[string]*testbed.Process{},
		AlertmanagerURL: amURL, alertmanager: am}
	go func() { d.hubDone <- h.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for h.Addr() == nil || h.AgentAddr() == nil {
		select {
		case err := <-d.hubDone:
			return nil, fmt.Errorf("hub stopped: %w", err)
		default:
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("hub did not listen within 30s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.HTTPURL, d.AgentsURL = "http://"+h.Addr().String(), "https://"+h.AgentAddr().String()

	agentBin, err := findAgent()
	if err != nil {
		logger.Warn("no agents: the hub runs without them", "err", err)
		return d, nil
	}
	token, err := devToken(ctx, fleet.Hub, cfg.Registration.Namespace)
	if err != nil {
		d.stop()
		return nil, err
	}
	pin, err := caPin(ca.CertFile)
	if err != nil {
		d.stop()
		return nil, err
	}
	for _, c := range fleet.Clusters {
		if err := d.startAgent(agentBin, token, pin, c); err != nil {
			d.stop()
			return nil, err
		}
	}
	return d, nil
}

// devToken creates the bootstrap token the fleet's agents join with.
func devToken(ctx context.Context, hubCP *testbed.Cluster, namespace string) (string, error) {
	c, err := client.New(hubCP.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		return "", fmt.Errorf("hub control-plane client: %w", err)
	}
	token, _, err := registration.NewTokens(c, namespace).Create(ctx, registration.TokenOptions{
		TTL: 24 * time.Hour, AutoAccept: true, ClusterSet: "dev", Description: "fleetpulse dev up",
	})
	return token, err
}

func (d *devTelemetry) startAgent(bin, token, caPin string, c *testbed.Cluster) error {
	metricsAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	selfAddr, err := freeLoopbackAddr()
	if err != nil {
		return err
	}
	agent, err := testbed.StartProcessEnv("fleetpulse-agent", bin, []string{
		"--hub=" + d.AgentsURL, "--hub-ca-hash=" + caPin,
		"--cluster-name=" + c.Name, "--kubeconfig=" + c.KubeconfigPath, "--state-dir=" + filepath.Join(c.Dir, "agent"),
		"--collection-interval=10s", "--metrics-address=" + metricsAddr, "--self-telemetry-address=" + selfAddr,
	}, []string{"FLEETPULSE_BOOTSTRAP_TOKEN=" + token}, c.Logs)
	if err != nil {
		return fmt.Errorf("start agent for %s: %w", c.Name, err)
	}
	d.agents[c.Name] = agent
	return nil
}

// stop stops the agents, then the hub.
func (d *devTelemetry) stop() {
	var wg sync.WaitGroup
	for _, a := range d.agents {
		wg.Add(1)
		go func() { defer wg.Done(); a.Stop(10 * time.Second) }()
	}
	wg.Wait()
	d.cancel()
	<-d.hubDone
	if d.alertmanager != nil {
		d.alertmanager.Stop(10 * time.Second)
	}
}

// startDevAlertmanager runs Debian's Alertmanager (prometheus-alertmanager)
// for the fleet on a free port; without the binary the fleet runs without.
func startDevAlertmanager(dir string, logger *slog.Logger) (*testbed.Process, string, error) {
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		logger.Warn("no Alertmanager: alerts stay on the hub (apt-get install prometheus-alertmanager)")
		return nil, "", nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create alertmanager dir: %w", err)
	}
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: fleet\n  group_by: [alertname, cluster]\nreceivers:\n  - name: fleet\n"), 0o644); err != nil {
		return nil, "", fmt.Errorf("write alertmanager config: %w", err)
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, "", err
	}
	am, err := testbed.StartProcess("prometheus-alertmanager", bin, []string{
		"--config.file=" + cfg, "--storage.path=" + dir, "--web.listen-address=" + addr, "--cluster.listen-address=",
	}, dir)
	if err != nil {
		return nil, "", fmt.Errorf("start alertmanager: %w", err)
	}
	return am, "http://" + addr, nil
}

func freeLoopbackAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}
