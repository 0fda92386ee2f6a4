// Command fleetpulse-agent is the Fleetpulse agent, an OpenTelemetry Collector
// distribution that runs on every managed cluster.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/prometheus/common/version"
	"github.com/spf13/pflag"
	"go.opentelemetry.io/collector/otelcol"

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

Examples:
  # the built-in pipeline, from outside the cluster
  fleetpulse-agent --hub=https://hub.example:8443 --cluster-name=prod-eu-1 \
    --kubeconfig=$HOME/.kube/config --state-dir=/var/lib/fleetpulse-agent

  # the built-in pipeline with one setting changed
  fleetpulse-agent --hub=https://hub.example:8443 --cluster-name=prod-eu-1 \
    --set=processors.batch.timeout=2s

  # a pipeline of your own, checked first
  fleetpulse-agent validate --config=file:agent.yaml
  fleetpulse-agent --config=file:agent.yaml`

func main() {
	cmd := otelcol.NewCommand(collector.Settings(version.Version))
	cmd.Long = long
	opts := collector.AgentOptions{
		StateDir: "/var/lib/fleetpulse-agent", CollectionInterval: 30 * time.Second,
		MetricsAddr: "127.0.0.1:8888", SelfTelemetryAddr: "127.0.0.1:14318",
	}
	addAgentFlags(cmd.Flags(), &opts)

	// The built-in pipeline must come before any --config so that a user's
	// file overrides it, so it is rendered from a first pass over the flags.
	pre := pflag.NewFlagSet("agent", pflag.ContinueOnError)
	pre.ParseErrorsAllowlist.UnknownFlags = true
	pre.Usage = func() {}
	addAgentFlags(pre, &opts)
	_ = pre.Parse(os.Args[1:])
	if opts.Hub != "" {
		y, err := collector.DefaultConfig(opts)
		if err != nil {
			fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
			os.Exit(2)
		}
		cmd.SetArgs(append([]string{"--config=yaml:" + y}, os.Args[1:]...))
	}
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(1)
	}
}

func addAgentFlags(f *pflag.FlagSet, o *collector.AgentOptions) {
	f.StringVar(&o.Hub, "hub", o.Hub, "hub base URL; turns on the built-in pipeline")
	f.StringVar(&o.ClusterName, "cluster-name", o.ClusterName, "this cluster's registered name, stamped on everything sent")
	f.StringVar(&o.ClusterSet, "cluster-set", o.ClusterSet, "this cluster's cluster set (optional)")
	f.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig of the cluster to observe; empty means in-cluster")
	f.StringVar(&o.StateDir, "state-dir", o.StateDir, "folder for the disk queue")
	f.StringVar(&o.CAFile, "hub-ca-file", o.CAFile, "CA bundle that verifies the hub")
	f.StringVar(&o.CertFile, "cert-file", o.CertFile, "client certificate for the hub")
	f.StringVar(&o.KeyFile, "key-file", o.KeyFile, "client key for the hub")
	f.StringVar(&o.MetricsAddr, "metrics-address", o.MetricsAddr, "host:port serving the agent's own metrics for Prometheus")
	f.StringVar(&o.SelfTelemetryAddr, "self-telemetry-address", o.SelfTelemetryAddr, "loopback host:port through which the agent's own metrics are sent to the hub; empty keeps them local")
	f.DurationVar(&o.CollectionInterval, "collection-interval", o.CollectionInterval, "how often the inventory is collected and sent")
}
