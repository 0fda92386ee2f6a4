package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// defaultDevState is where 'fleetpulse dev' keeps a local fleet: certificates,
// etcd data, logs and kubeconfigs, one folder per cluster.
const defaultDevState = ".fleetpulse/dev"

// devState is the fleet.json that 'dev up' writes and 'dev down' reads.
type devState struct {
	PID      int               `json:"pid"`
	Hub      string            `json:"hub"`
	Started  time.Time         `json:"started"`
	Clusters []devStateCluster `json:"clusters"`
}

type devStateCluster struct {
	Name       string         `json:"name"`
	APIServer  string         `json:"apiserver"`
	Kubeconfig string         `json:"kubeconfig"`
	PIDs       map[string]int `json:"pids"`
}

func newDevCommand(lf *logFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a local Fleetpulse fleet on real Kubernetes control planes",
		Long: `Run a local fleet for development and demos: a hub control plane (etcd,
kube-apiserver, kube-controller-manager) and managed clusters (the same plus
kube-scheduler and kwok-simulated nodes), all real processes on loopback, plus
the hub itself and one fleetpulse-agent per managed cluster (found next to this
executable; 'make build' puts both in bin/), each with a client certificate
from the fleet's own CA. The Kubernetes binaries are built from the Go module
proxy on first use and cached.`,
	}
	cmd.AddCommand(newDevUpCommand(lf), newDevDownCommand(), newDevBuildCommand())
	return cmd
}

func newDevBuildCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "build",
		Short: "Build the test bed's binaries into the cache (or find them there) and print where they are",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			bins, err := testbed.EnsureBinaries(cmd.Context(), testbed.BuildOptions{Logger: slog.Default()})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "test-bed binaries (Kubernetes %s, kwok %s) in %s, ready after %s:\n", testbed.KubernetesVersion, testbed.KwokVersion, bins.Dir, time.Since(start).Round(time.Second))
			for _, b := range []string{bins.Etcd, bins.APIServer, bins.ControllerManager, bins.Scheduler, bins.Kwok, bins.Kubectl} {
				fmt.Fprintln(w, "  "+b)
			}
			return nil
		},
	}
}

func newDevUpCommand(lf *logFlags) *cobra.Command {
	opts := testbed.FleetOptions{Dir: defaultDevState, Clusters: 3, Nodes: 3}
	hubHTTP, hubAgents := "127.0.0.1:9090", "127.0.0.1:8443"
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local fleet and keep it running until Ctrl-C",
		// The hub's controllers log to the fleet's log file, warnings to the
		// terminal.
		Annotations: map[string]string{annotationOwnLogger: "true"},
		Args:        cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A closing terminal must not cut the fleet's teardown short.
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGHUP)
			defer stop()
			if err := clearStaleState(opts.Dir); err != nil {
				return err
			}
			logs, err := openDevLoggers(lf, opts.Dir)
			if err != nil {
				return err
			}
			defer logs.close()
			logger := logs.progress
			opts.Logger = logs.quiet
			slog.SetDefault(logs.quiet) // libraries that log through the default
			ctrllog.SetLogger(logr.FromSlogHandler(logs.quiet.Handler()))
			logger.Info("starting the local fleet; full logs in " + logs.path)
			bins, err := testbed.EnsureBinaries(ctx, testbed.BuildOptions{Logger: logger})
			if err != nil {
				return err
			}
			start := time.Now()
			fleet, err := testbed.StartFleet(ctx, bins, opts)
			if err != nil {
				return err
			}
			defer func() {
				logger.Info("stopping the local fleet")
				fleet.Stop()
				_ = os.RemoveAll(opts.Dir)
			}()
			tel, err := startDevTelemetry(fleet, opts.Dir, hubHTTP, hubAgents, logs.quiet)
			if err != nil {
				return err
			}
			defer tel.stop()
			if err := writeDevState(opts.Dir, fleet, tel); err != nil {
				return err
			}
			printFleet(cmd.OutOrStdout(), opts.Dir, logs.path, fleet, tel, kubectlCommand(bins), time.Since(start))
			return watchFleet(ctx, fleet, logger)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "state-dir", opts.Dir, "folder holding the fleet's state (removed on shutdown)")
	f.IntVar(&opts.Clusters, "clusters", opts.Clusters, "number of managed clusters")
	f.IntVar(&opts.Nodes, "nodes", opts.Nodes, "number of kwok nodes in each managed cluster")
	f.StringVar(&hubHTTP, "hub.http-address", hubHTTP, "the hub's Prometheus API (Grafana datasource URL)")
	f.StringVar(&hubAgents, "hub.agents-address", hubAgents, "the hub's mutual-TLS address for agents")
	return cmd
}

// watchFleet waits for ctx to end, warning once about any process that died.
func watchFleet(ctx interface {
	Done() <-chan struct{}
}, fleet *testbed.Fleet, logger *slog.Logger) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	reported := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			for _, c := range fleet.All() {
				if err := c.Alive(); err != nil && !reported[c.Name] {
					reported[c.Name] = true
					logger.Error("a process of the local fleet ended", "cluster", c.Name, "err", err)
				}
			}
		}
	}
}

// kubectlCommand is kubectl from PATH, else the test bed's own build.
func kubectlCommand(bins *testbed.Binaries) string {
	if _, err := exec.LookPath("kubectl"); err == nil {
		return "kubectl"
	}
	return bins.Kubectl
}

func printFleet(w io.Writer, dir, logPath string, fleet *testbed.Fleet, tel *devTelemetry, kubectl string, took time.Duration) {
	fmt.Fprintf(w, "\nFleetpulse local fleet is up (%s; state in %s):\n\n", took.Round(100*time.Millisecond), dir)
	for _, c := range fleet.All() {
		what := "get nodes"
		if c.Name == testbed.HubName {
			what = "get managedclusters"
		}
		fmt.Fprintf(w, "  %-10s %s\n             %s --kubeconfig %s %s\n", c.Name, c.APIServerURL, kubectl, c.KubeconfigPath, what)
	}
	fmt.Fprintf(w, "\n  telemetry  Prometheus datasource for Grafana: %s  (agents write to %s, one per cluster)\n", tel.HTTPURL, tel.AgentsURL)
	fmt.Fprintf(w, "             open on loopback, without TLS or authentication, as a local fleet is; a deployed hub takes --web.config.file\n")
	fmt.Fprintf(w, "             promtool query instant %s 'count by (cluster) (k8s_node_condition_status{k8s_node_condition_type=\"Ready\",k8s_node_condition_status=\"true\"})'\n", tel.HTTPURL)
	if tel.AlertmanagerURL != "" {
		fmt.Fprintf(w, "             Alertmanager: %s  (alerts of the shipped rule packs, by cluster)\n", tel.AlertmanagerURL)
	}
	fmt.Fprintf(w, "\n  logs       %s (the terminal shows warnings and errors only)\n", logPath)
	fmt.Fprintf(w, "\nPress Ctrl-C (or run 'fleetpulse dev down') to stop and remove the fleet.\n")
}

func writeDevState(dir string, fleet *testbed.Fleet, tel *devTelemetry) error {
	st := devState{PID: os.Getpid(), Started: time.Now().UTC(), Hub: tel.HTTPURL}
	for _, c := range fleet.All() {
		pids := c.PIDs()
		if a, ok := tel.agents[c.Name]; ok {
			pids["fleetpulse-agent"] = a.PID()
		}
		if c.Name == testbed.HubName && tel.alertmanager != nil {
			pids["prometheus-alertmanager"] = tel.alertmanager.PID()
		}
		st.Clusters = append(st.Clusters, devStateCluster{Name: c.Name, APIServer: c.APIServerURL, Kubeconfig: c.KubeconfigPath, PIDs: pids})
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("encode fleet state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "fleet.json"), b, 0o644); err != nil {
		return fmt.Errorf("write fleet state: %w", err)
	}
	return nil
}

func readDevState(dir string) (*devState, error) {
	b, err := os.ReadFile(filepath.Join(dir, "fleet.json"))
	if err != nil {
		return nil, err
	}
	var st devState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("decode %s: %w", filepath.Join(dir, "fleet.json"), err)
	}
	return &st, nil
}

// clearStaleState refuses to start over a running fleet and removes what a
// crashed one left behind.
func clearStaleState(dir string) error {
	st, err := readDevState(dir)
	if err == nil && alive(st.PID) {
		return fmt.Errorf("a local fleet is already running (pid %d, state in %s); stop it with 'fleetpulse dev down'", st.PID, dir)
	}
	if err == nil {
		killLeftovers(st)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove stale fleet state %s: %w", dir, err)
	}
	return nil
}

func newDevDownCommand() *cobra.Command {
	dir := defaultDevState
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local fleet started by 'dev up' and remove its state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := readDevState(dir)
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(cmd.OutOrStdout(), "no local fleet in %s\n", dir)
				return nil
			}
			if err != nil {
				return err
			}
			if alive(st.PID) {
				_ = syscall.Kill(st.PID, syscall.SIGTERM)
				deadline := time.Now().Add(60 * time.Second)
				for alive(st.PID) && time.Now().Before(deadline) {
					time.Sleep(200 * time.Millisecond)
				}
			}
			killLeftovers(st)
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove fleet state %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "local fleet stopped; removed %s\n", dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "state-dir", dir, "folder holding the fleet's state")
	return cmd
}

// killLeftovers kills the process group of every fleet process still running
// the binary it was started as (a reused pid is left alone).
func killLeftovers(st *devState) {
	for _, c := range st.Clusters {
		for name, pid := range c.PIDs {
			exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			if err == nil && strings.HasSuffix(exe, "/"+name) {
				_ = syscall.Kill(-pid, syscall.SIGKILL)
			}
		}
	}
}

func alive(pid int) bool {
	return pid > 0 && syscall.Kill(pid, 0) == nil
}
