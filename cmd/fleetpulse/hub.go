package main

import (
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/fleetpulse/fleetpulse/hub"
)

func newHubCommand() *cobra.Command {
	cfg := hub.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "hub",
		Short: "Run the Fleetpulse hub",
		Long: `Run the Fleetpulse hub: the HTTP endpoint for users' tools and the operational
endpoints /metrics (Prometheus), /-/healthy and /-/ready. SIGINT or SIGTERM
shut it down gracefully.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := hub.New(cfg, slog.Default().With("component", "hub"))
			if err != nil {
				return err
			}
			return h.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.HTTPListenAddress, "http.listen-address", cfg.HTTPListenAddress, "address for the HTTP API and the operational endpoints")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "time allowed for a graceful shutdown")
	return cmd
}
