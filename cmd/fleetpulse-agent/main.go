// Command fleetpulse-agent is the Fleetpulse agent, an OpenTelemetry Collector
// distribution that runs on every managed cluster.
package main

import (
	"fmt"
	"os"

	"github.com/prometheus/common/version"
	"go.opentelemetry.io/collector/otelcol"

	"github.com/fleetpulse/fleetpulse/collector"
)

const long = `The Fleetpulse agent runs on every managed cluster. It is an OpenTelemetry
Collector distribution: it takes ordinary Collector YAML, and 'components'
lists what it includes.

Examples:
  # run a pipeline from a file, overriding one setting
  fleetpulse-agent --config=file:agent.yaml --set=processors.batch.timeout=2s

  # check a configuration without running it
  fleetpulse-agent validate --config=file:agent.yaml

  # configuration from an environment variable, or inline
  fleetpulse-agent --config=env:AGENT_CONFIG
  fleetpulse-agent --config='yaml:exporters::debug::verbosity: basic' --config=file:agent.yaml`

func main() {
	cmd := otelcol.NewCommand(collector.Settings(version.Version))
	cmd.Long = long
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(1)
	}
}
