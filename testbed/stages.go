package testbed

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
)

// LabelCrashLoop on a pod (value "true") makes kwok keep its containers
// crash-looping: not ready, waiting in CrashLoopBackOff, their restart
// counts growing every two seconds (stages/pod-crash-loop.yaml). Tests give
// it to a workload that must fail its health checks.
const LabelCrashLoop = "stage.fleetpulse.io/crash-loop"

// ownStages are kwok Stages of the test bed's own, beside those taken from
// kwok's module (binaries.go); they live in the source, not in the cached
// binaries, so a change needs no rebuild.
//
//go:embed stages/*.yaml
var ownStages embed.FS

// writeOwnStages writes the test bed's stages into dir and returns their
// paths.
func writeOwnStages(dir string) ([]string, error) {
	names, err := ownStages.ReadDir("stages")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %q: %w", dir, err)
	}
	var out []string
	for _, n := range names {
		b, err := ownStages.ReadFile("stages/" + n.Name())
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, n.Name())
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return nil, fmt.Errorf("write kwok stage %s: %w", p, err)
		}
		out = append(out, p)
	}
	return out, nil
}
