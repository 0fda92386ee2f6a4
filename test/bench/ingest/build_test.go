package ingest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// hubBinaryEnv names a fleetpulse binary to measure instead of building
// one, e.g. an earlier commit's, to compare two builds.
const hubBinaryEnv = "FLEETPULSE_BENCH_HUB"

// buildHub builds the fleetpulse binary from this checkout, with the tag
// everything that links Thanos needs (or returns hubBinaryEnv's).
func buildHub(b *testing.B, root string) string {
	b.Helper()
	if bin := os.Getenv(hubBinaryEnv); bin != "" {
		return bin
	}
	bin := filepath.Join(b.TempDir(), "fleetpulse")
	goBuild(b, root, "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
	return bin
}

// A peer is an upstream receiver built by version from a module of its
// own under test/bench (its go.mod pins the version), so that its
// dependencies stay out of the product module's graph, as the test bed
// builds Thanos (testbed.ThanosBinary).
type peer struct {
	name   string // binary name and cache prefix
	module string // folder under test/bench
	pkg    string // the command's package
	tags   string // build tags ("" for none)
}

var (
	// VictoriaMetrics single-node v1.151.0.
	vmPeer = peer{"victoria-metrics", "vmpeer", "github.com/VictoriaMetrics/VictoriaMetrics/app/victoria-metrics", ""}
	// Prometheus v3 (module v0.309.1, the release the hub links).
	promPeer = peer{"prometheus", "prompeer", "github.com/prometheus/prometheus/cmd/prometheus", ""}
)

// binary returns the peer built from its module, building it once into
// .cache/bench/<name>-<key>/ (git-ignored). The key hashes that module's
// go.mod and go.sum, the tags and the Go toolchain, so only a change to one
// of them rebuilds; a file lock makes concurrent runs wait for one build.
func (p peer) binary(b *testing.B, root string) string {
	b.Helper()
	mod := filepath.Join(root, "test", "bench", p.module)
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "tags %s\x00go %s\x00", p.tags, runtime.Version())
	cache := filepath.Join(root, ".cache", "bench")
	dir := filepath.Join(cache, p.name+"-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(dir, p.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	unlock := lock(b, dir+".lock")
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	tmp := bin + ".tmp"
	goBuild(b, mod, "build", "-trimpath", "-tags", p.tags, "-o", tmp, p.pkg)
	if err := os.Rename(tmp, bin); err != nil {
		b.Fatal(err)
	}
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

// lock takes an exclusive flock on path, waiting for other holders.
func lock(b *testing.B, path string) (unlock func()) {
	b.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		b.Fatalf("lock %s: %v", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }
}
