// Command fleetpulse runs the Fleetpulse hub and the local development fleet,
// and launches the agent.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	_ "github.com/fleetpulse/fleetpulse/internal/protodup"
)

func main() {
	// Signals after the first are absorbed while the context's users shut
	// down. SIGHUP is each command's own: the hub reloads rules on it, a local
	// fleet tears down.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A reader of our output that went away (make run | tee, then Ctrl-C) must
	// not kill us with SIGPIPE in the middle of stopping child processes.
	signal.Ignore(syscall.SIGPIPE)
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "fleetpulse:", err)
		os.Exit(1)
	}
}

// annotationOwnLogger on a command says it sets controller-runtime's logger
// itself.
const annotationOwnLogger = "fleetpulse.io/own-logger"

// logFlags configure the process-wide structured logger.
type logFlags struct {
	level, format string
}

func newRootCommand() *cobra.Command {
	var lf logFlags
	root := &cobra.Command{
		Use:   "fleetpulse",
		Short: "Run fleets of Kubernetes clusters with telemetry in the control loop",
		Long: `Fleetpulse registers Kubernetes clusters, ships their telemetry to a hub, and lets
alerts and PromQL scores drive placement, work distribution and remediation.

The hub runs with 'fleetpulse hub'. Every managed cluster runs the agent
(fleetpulse-agent, an OpenTelemetry Collector distribution; 'fleetpulse agent'
launches it). 'fleetpulse dev up' starts a local fleet on real Kubernetes
control planes for development and demos.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			h, err := lf.handler(os.Stderr)
			if err != nil {
				return err
			}
			slog.SetDefault(slog.New(h))
			// controller-runtime takes its logger once, globally; a command
			// that logs elsewhere (dev up) sets it itself.
			if cmd.Annotations[annotationOwnLogger] == "" {
				ctrllog.SetLogger(logr.FromSlogHandler(h))
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&lf.level, "log.level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&lf.format, "log.format", "logfmt", "log format: logfmt or json")
	root.AddCommand(newHubCommand(), newDevCommand(&lf), newPolicyCommand(), newAppCommand(), newAgentCommand(), newVersionCommand())
	return root
}

// handler writes records of the flags' level and format to w.
func (f logFlags) handler(w io.Writer) (slog.Handler, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, fmt.Errorf("--log.level %q: want debug, info, warn or error", f.level)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.format) {
	case "logfmt":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	default:
		return nil, fmt.Errorf("--log.format %q: want logfmt or json", f.format)
	}
}
