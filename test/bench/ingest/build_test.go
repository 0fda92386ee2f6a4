package ingest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// buildHub builds the fleetpulse binary from this checkout, with the tag
// everything that links Thanos needs.
func buildHub(b *testing.B, root string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "fleetpulse")
	goBuild(b, root, "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
	return bin
}

func goBuild(b *testing.B, dir string, args ...string) {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go %s (in %s): %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	b.Logf("go %s: %s", strings.Join(args, " "), time.Since(start).Round(100*time.Millisecond))
}

// repoRoot is the checkout's root.
func repoRoot(b *testing.B) string {
	b.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	return root
}
