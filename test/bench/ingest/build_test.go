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

// thanosTags are the tags Thanos's own release build uses (.promu.yml);
// without slicelabels its receive writer corrupts labels (FACTS.md).
const thanosTags = "netgo,slicelabels"

// buildHub builds the fleetpulse binary from this checkout, with the tag
// everything that links Thanos needs.
func buildHub(b *testing.B, root string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "fleetpulse")
	goBuild(b, root, "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
	return bin
}

// thanosBinary returns Thanos built from the thanospeer module, building it
// once into .cache/bench/thanos-<key>/ (git-ignored). The key hashes that
// module's go.mod and go.sum, the tags and the Go toolchain, so only a
// change to one of them rebuilds; a file lock makes concurrent runs wait
// for one build.
func thanosBinary(b *testing.B, root string) string {
	b.Helper()
	mod := filepath.Join(root, "test", "bench", "thanospeer")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "tags %s\x00go %s\x00", thanosTags, runtime.Version())
	cache := filepath.Join(root, ".cache", "bench")
	dir := filepath.Join(cache, "thanos-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(dir, "thanos")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	unlock := lock(b, dir+".lock")
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	tmp := bin + ".tmp"
	goBuild(b, mod, "build", "-trimpath", "-tags", thanosTags, "-o", tmp, "github.com/thanos-io/thanos/cmd/thanos")
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

// repoRoot is the checkout's root.
func repoRoot(b *testing.B) string {
	b.Helper()
	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	return root
}
