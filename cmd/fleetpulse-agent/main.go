// Command fleetpulse-agent is the Fleetpulse agent, an OpenTelemetry Collector
// distribution that runs on every managed cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/version"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/multierr"

	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/agent/work"
	"github.com/fleetpulse/fleetpulse/collector"
)

const long = `The Fleetpulse agent runs on every managed cluster. It is an OpenTelemetry
Collector distribution: it takes ordinary Collector YAML, and 'components'
lists what it includes.

With --hub it runs its built-in pipeline: the cluster's inventory (k8s_inventory),
memory-limited, stamped with the cluster's identity (cluster_identity), batched,
and sent to the hub (fleetpulse_hub) through a disk queue under --state-dir that
survives hub outages and agent restarts. A --config given as well is merged over
the built-in pipeline, so it can add components or override settings.

With a bootstrap token (--bootstrap-token, or FLEETPULSE_BOOTSTRAP_TOKEN, which
ps does not show) the agent joins the hub itself: it checks the hub's CA against
--hub-ca-hash (or trusts --hub-ca-file), registers the cluster, waits until the
hub accepts it, and keeps the key and certificate it is issued in
--state-dir/credentials. It then heartbeats, renews the certificate before it
expires, and stops when the hub deregisters the cluster. A restart reuses the
stored credentials; the token is needed again only to join again.

Examples:
  # the built-in pipeline, from outside the cluster
  fleetpulse-agent --hub=https://hub.example:8443 --cluster-name=prod-eu-1 \
    --kubeconfig=$HOME/.kube/config --state-dir=/var/lib/fleetpulse-agent

  # join a hub with a bootstrap token, the first time; later runs reuse the credentials
  FLEETPULSE_BOOTSTRAP_TOKEN=abcdef.0123456789abcdef fleetpulse-agent \
    --hub=https://hub.example:8443 --hub-ca-hash=sha256:<hex> --cluster-name=prod-eu-1

  # the built-in pipeline with one setting changed
  fleetpulse-agent --hub=https://hub.example:8443 --cluster-name=prod-eu-1 \
    --set=processors.batch.timeout=2s

  # a pipeline of your own, checked first
  fleetpulse-agent validate --config=file:agent.yaml
  fleetpulse-agent --config=file:agent.yaml`

// joinFlags are the flags of registration.
type joinFlags struct {
	token, caHash string
}

func main() {
	// The registration's and the work agent's counts are published in the
	// Collector's own telemetry by extensions, which the built-in pipeline
	// turns on when the agent registers.
	stats, workStats := registration.NewStats(), work.NewStats()
	settings := collector.Settings(version.Version)
	components := settings.Factories
	settings.Factories = func() (otelcol.Factories, error) {
		f, err := components()
		if err != nil {
			return f, err
		}
		for _, ext := range []extension.Factory{registration.NewTelemetryFactory(stats), work.NewTelemetryFactory(workStats)} {
			f.Extensions[ext.Type()] = ext
		}
		return f, nil
	}
	cmd := otelcol.NewCommand(settings)
	cmd.Long = long
	opts := collector.AgentOptions{
		StateDir: "/var/lib/fleetpulse-agent", CollectionInterval: 30 * time.Second,
		MetricsAddr: "127.0.0.1:8888", SelfTelemetryAddr: "127.0.0.1:14318",
	}
	var join joinFlags
	addAgentFlags(cmd.Flags(), &opts, &join)
	var rt runtimeOptions
	addRuntimeFlags(cmd.Flags(), &rt)

	// The built-in pipeline must come before any --config so that a user's
	// file overrides it, so it is rendered from a first pass over the flags.
	pre := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	pre.ParseErrorsAllowlist.UnknownFlags = true
	pre.Usage = func() {}
	addAgentFlags(pre, &opts, &join)
	addRuntimeFlags(pre, &rt)
	_ = pre.Parse(os.Args[1:])
	rt.apply()
	if join.token == "" {
		join.token = os.Getenv(registration.EnvBootstrapToken)
	}
	reg, err := registrationConfig(&opts, join, stats)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(2)
	}
	if opts.Hub != "" {
		y, err := collector.DefaultConfig(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
			os.Exit(2)
		}
		cmd.SetArgs(append([]string{"--config=yaml:" + y}, os.Args[1:]...))
	}
	if reg != nil {
		runWithRegistration(cmd, *reg, workStats)
	}
	if err := cmd.Execute(); err != nil {
		if opts.SelfTelemetryAddr != "" && onlyFinalSelfTelemetryPush(err) {
			fmt.Fprintln(os.Stderr, "fleetpulse-agent: stopped; the last push of the agent's own metrics was lost:", err)
			return
		}
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(1)
	}
}

// onlyFinalSelfTelemetryPush reports whether err, the Collector's answer to
// a stop, is nothing but its meter provider's shutdown failing. With
// self-telemetry on, the provider's periodic reader pushes a last time
// over loopback OTLP when the Collector shuts telemetry down, which it does
// after its pipelines, the loopback receiver among them, have stopped: that
// push always fails, and a stop that went well otherwise is not a failure.
func onlyFinalSelfTelemetryPush(err error) bool {
	outer := multierr.Errors(err)
	if len(outer) != 1 || !strings.HasPrefix(outer[0].Error(), "failed to shutdown service after error: ") {
		return false
	}
	inner := multierr.Errors(errors.Unwrap(outer[0]))
	return len(inner) == 1 && strings.HasPrefix(inner[0].Error(), "failed to shutdown meter provider: ")
}

// registrationConfig returns the registration's configuration when the
// agent registers: with a bootstrap token, or with credentials a former
// run stored and no certificate given by flag. It points the built-in
// pipeline's TLS at the stored credentials. It returns nil otherwise.
func registrationConfig(o *collector.AgentOptions, j joinFlags, stats *registration.Stats) (*registration.Config, error) {
	if j.token == "" && (o.Hub == "" || o.CertFile != "" || o.KeyFile != "" || !registration.HasCredentials(o.StateDir)) {
		return nil, nil
	}
	if j.token != "" && (o.CertFile != "" || o.KeyFile != "") {
		return nil, errors.New("--bootstrap-token and --cert-file/--key-file exclude each other: registration issues the agent's certificate")
	}
	cfg := registration.Config{
		Hub: o.Hub, ClusterName: o.ClusterName, StateDir: o.StateDir,
		BootstrapToken: j.token, CAHash: j.caHash, CAFile: o.CAFile,
		AgentVersion: version.Version, Stats: stats,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "registration"),
	}
	var errs []error
	if o.Hub != "" {
		cluster, err := registration.NewKubeCluster(o.Kubeconfig, "fleetpulse-agent/"+version.Version)
		if err != nil {
			errs = append(errs, err)
		} else {
			cfg.Cluster = cluster
		}
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := registration.PathsIn(o.StateDir)
	o.CAFile, o.CertFile, o.KeyFile = p.CA, p.Cert, p.Key
	o.Extensions = map[string]any{registration.TelemetryType.String(): map[string]any{}, work.TelemetryType.String(): map[string]any{}}
	return &cfg, nil
}

// runWithRegistration makes the Collector's run join the hub first (or
// reuse stored credentials), then heartbeat and renew beside it. When the
// registration ends (the hub deregistered the cluster, or refuses its
// certificate) the Collector is stopped and the command fails.
func runWithRegistration(cmd *cobra.Command, cfg registration.Config, workStats *work.Stats) {
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		agent, err := registration.New(cfg)
		if err != nil {
			return err
		}
		if err := agent.Start(ctx); err != nil {
			if ctx.Err() != nil {
				return nil // stopped while joining
			}
			return err
		}
		colCtx, cancel := context.WithCancel(ctx)
		defer cancel()
		ended := make(chan error, 1)
		go func() {
			err := agent.Run(colCtx)
			cancel()
			ended <- err
		}()
		// Work distribution (agent/work): this cluster's ManifestWorks from
		// the hub, applied beside the Collector until colCtx ends.
		workLog := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "work")
		kubeconfig, _ := c.Flags().GetString("kubeconfig")
		if w, err := work.New(work.Config{Hub: cfg.Hub, ClusterName: cfg.ClusterName, StateDir: cfg.StateDir, Kubeconfig: kubeconfig, Logger: workLog, Stats: workStats}); err != nil {
			workLog.Error("work distribution is off", "err", err)
		} else {
			go func() { _ = w.Run(colCtx) }()
		}
		c.SetContext(colCtx)
		err = run(c, args)
		cancel()
		if regErr := <-ended; regErr != nil {
			return regErr
		}
		return err
	}
}

func addAgentFlags(f *pflag.FlagSet, o *collector.AgentOptions, j *joinFlags) {
	f.StringVar(&o.Hub, "hub", o.Hub, "hub base URL; turns on the built-in pipeline")
	f.StringVar(&o.ClusterName, "cluster-name", o.ClusterName, "this cluster's registered name, stamped on everything sent")
	f.StringVar(&o.ClusterSet, "cluster-set", o.ClusterSet, "this cluster's cluster set (optional)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster to observe; empty means in-cluster")
	f.StringVar(&o.StateDir, "state-dir", o.StateDir, "folder for the disk queue and the credentials registration stores (credentials/)")
	f.StringVar(&o.CAFile, "hub-ca-file", o.CAFile, "CA bundle that verifies the hub (when joining: instead of --hub-ca-hash)")
	f.StringVar(&o.CertFile, "cert-file", o.CertFile, "client certificate for the hub, when the agent does not register")
	f.StringVar(&o.KeyFile, "key-file", o.KeyFile, "client key for the hub, when the agent does not register")
	f.StringVar(&j.token, "bootstrap-token", "", "bootstrap token to join the hub with when --state-dir holds no usable credentials; prefer $"+registration.EnvBootstrapToken+", which ps does not show")
	f.StringVar(&j.caHash, "hub-ca-hash", j.caHash, "pin of the hub's CA when joining: sha256:<hex SHA-256 of its public key>")
	f.StringVar(&o.MetricsAddr, "metrics-address", o.MetricsAddr, "host:port serving the agent's own metrics for Prometheus")
	f.StringVar(&o.SelfTelemetryAddr, "self-telemetry-address", o.SelfTelemetryAddr, "loopback host:port through which the agent's own metrics are sent to the hub; empty keeps them local")
	f.DurationVar(&o.CollectionInterval, "collection-interval", o.CollectionInterval, "how often the inventory is collected and sent")
}
