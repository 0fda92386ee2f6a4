// Package rules ships Fleetpulse's Prometheus rule packs. The hub loads them
// by default (with the user's own rule files); each pack has unit tests in
// promtool's format beside it (<pack>_test.yaml), run by `make test`.
package rules

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

//go:embed *.yaml
var packs embed.FS

// WriteTo writes the shipped packs (not their tests) into dir and returns
// their paths, for the rules manager to load like any rule file.
func WriteTo(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create shipped rules dir: %w", err)
	}
	entries, err := fs.ReadDir(packs, ".")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), "_test.yaml") {
			continue
		}
		b, err := packs.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, e.Name())
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, fmt.Errorf("write shipped rules %s: %w", e.Name(), err)
		}
		out = append(out, path)
	}
	return out, nil
}
