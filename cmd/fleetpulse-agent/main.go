// Command fleetpulse-agent is the Fleetpulse agent, an OpenTelemetry Collector
// distribution that runs on every managed cluster.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/version"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/collector/otelcol"
	"go.uber.org/multierr"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
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
stored credentials; the token is needed again only to join again. The
registration and the work applier run as the Collector extensions
fleetpulse_registration and fleetpulse_work, so --set and --config reach them
like any component; --health-address serves every component's status.

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

func main() {
	// SIGINT and SIGTERM end the command's context, rather than reach the
	// Collector, so that a stop also ends a start that waits (the
	// registration's, until the hub accepts the cluster). A controller
	// extension that ends with an error (the hub deregistered the cluster)
	// ends the context too; that error then fails the command.
	signalled, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, stop := context.WithCancelCause(signalled)
	settings := collector.Settings(version.Version, stop)
	settings.DisableGracefulShutdown = true
	cmd := otelcol.NewCommand(settings)
	cmd.Long = long
	cmd.SilenceErrors = true // printed below, once, unless the stop was asked for
	opts := collector.AgentOptions{
		StateDir: "/var/lib/fleetpulse-agent", CollectionInterval: 30 * time.Second,
		MetricsAddr: "127.0.0.1:8888", SelfTelemetryAddr: "127.0.0.1:14318",
	}
	addAgentFlags(cmd.PersistentFlags(), &opts)
	var rt runtimeOptions
	addRuntimeFlags(cmd.PersistentFlags(), &rt)

	// The built-in pipeline must come before any --config so that a user's
	// file overrides it, so it is rendered from a first pass over the flags.
	pre := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	pre.ParseErrorsAllowlist.UnknownFlags = true
	pre.Usage = func() {}
	addAgentFlags(pre, &opts)
	addRuntimeFlags(pre, &rt)
	_ = pre.Parse(os.Args[1:])
	rt.apply()
	args, err := builtInPipeline(&opts, os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(2)
	}
	cmd.SetArgs(args)

	err = cmd.ExecuteContext(ctx)
	stopped := signalled.Err() != nil
	stop(nil)
	stopSignals()
	switch {
	case err == nil:
	case stopped && errors.Is(err, context.Canceled):
		// Stopped while starting (waiting for the hub to accept the cluster).
	case opts.SelfTelemetryAddr != "" && onlyFinalSelfTelemetryPush(err):
		fmt.Fprintln(os.Stderr, "fleetpulse-agent: stopped; the last push of the agent's own metrics was lost:", err)
	default:
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(1)
	}
}

// builtInPipeline returns the command's arguments: with --hub, the built-in
// pipeline's configuration first, then args. The bootstrap token reaches
// the registration through $FLEETPULSE_BOOTSTRAP_TOKEN, which the
// configuration names, so neither the configuration nor a print of it holds
// the token.
func builtInPipeline(o *collector.AgentOptions, args []string) ([]string, error) {
	if o.BootstrapToken == "" {
		o.BootstrapToken = os.Getenv(agentreg.EnvBootstrapToken)
	} else if err := os.Setenv(agentreg.EnvBootstrapToken, o.BootstrapToken); err != nil {
		return nil, fmt.Errorf("pass the bootstrap token on: %w", err)
	}
	if o.Hub == "" {
		if o.BootstrapToken != "" {
			return nil, errors.New("--bootstrap-token needs --hub, the hub's agents URL")
		}
		return args, nil
	}
	y, err := collector.DefaultConfig(*o)
	if err != nil {
		return nil, err
	}
	return append([]string{"--config=yaml:" + y}, args...), nil
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

func addAgentFlags(f *pflag.FlagSet, o *collector.AgentOptions) {
	f.StringVar(&o.Hub, "hub", o.Hub, "hub base URL; turns on the built-in pipeline")
	f.StringVar(&o.ClusterName, "cluster-name", o.ClusterName, "this cluster's registered name, stamped on everything sent")
	f.StringVar(&o.ClusterSet, "cluster-set", o.ClusterSet, "this cluster's cluster set (optional)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster to observe; empty means in-cluster")
	f.StringVar(&o.StateDir, "state-dir", o.StateDir, "folder for the disk queue and the credentials registration stores (credentials/)")
	f.StringVar(&o.CAFile, "hub-ca-file", o.CAFile, "CA bundle that verifies the hub (when joining: instead of --hub-ca-hash)")
	f.StringVar(&o.CertFile, "cert-file", o.CertFile, "client certificate for the hub, when the agent does not register")
	f.StringVar(&o.KeyFile, "key-file", o.KeyFile, "client key for the hub, when the agent does not register")
	f.StringVar(&o.BootstrapToken, "bootstrap-token", "", "bootstrap token to join the hub with when --state-dir holds no usable credentials; prefer $"+agentreg.EnvBootstrapToken+", which ps does not show")
	f.StringVar(&o.CAHash, "hub-ca-hash", o.CAHash, "pin of the hub's CA when joining: sha256:<hex SHA-256 of its public key>")
	f.StringVar(&o.MetricsAddr, "metrics-address", o.MetricsAddr, "host:port serving the agent's own metrics for Prometheus")
	f.StringVar(&o.HealthAddr, "health-address", o.HealthAddr, "host:port serving the agent's health (e.g. 127.0.0.1:13133): /status, with every component's status under ?verbose; empty (the default) turns it off")
	f.StringVar(&o.SelfTelemetryAddr, "self-telemetry-address", o.SelfTelemetryAddr, "loopback host:port through which the agent's own metrics are sent to the hub; empty keeps them local")
	f.DurationVar(&o.CollectionInterval, "collection-interval", o.CollectionInterval, "how often the inventory is collected and sent")
}
