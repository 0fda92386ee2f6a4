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

func main() {
	cmd := otelcol.NewCommand(collector.Settings(version.Version))
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse-agent:", err)
		os.Exit(1)
	}
}
