package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// agentBinary is the agent's Collector distribution.
const agentBinary = "fleetpulse-agent"

func newAgentCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "agent [agent flags]",
		Short: "Run the Fleetpulse agent (execs fleetpulse-agent with the given flags)",
		Long: `Run the Fleetpulse agent, an OpenTelemetry Collector distribution. This replaces
the current process with fleetpulse-agent, found next to this executable or on
PATH, passing every argument through: 'fleetpulse agent --help' shows the
agent's own flags.`,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			path, err := findAgent()
			if err != nil {
				return err
			}
			return syscall.Exec(path, append([]string{agentBinary}, args...), os.Environ())
		},
	}
}

func findAgent() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), agentBinary)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath(agentBinary)
	if errors.Is(err, exec.ErrNotFound) {
		return "", fmt.Errorf("%s not found next to this executable nor on PATH; build it with 'make build'", agentBinary)
	}
	return p, err
}
