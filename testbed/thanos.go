package testbed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// ThanosTags are the tags Thanos's own release build uses (.promu.yml);
// without slicelabels its receive writer corrupts labels.
const ThanosTags = "netgo,slicelabels"

// ThanosBinary returns Thanos v0.42.4's own `thanos` binary, built from the
// module in test/bench/thanospeer once into .cache/bench/thanos-<key>/
// (git-ignored). The key hashes that module's go.mod and go.sum, the tags
// and the Go toolchain, so only a change to one of them rebuilds; a file
// lock makes concurrent callers wait for one build.
func ThanosBinary(t testing.TB) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod := filepath.Join(root, "test", "bench", "thanospeer")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(mod, f))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(data))
		h.Write(data)
	}
	fmt.Fprintf(h, "tags %s\x00go %s\x00", ThanosTags, runtime.Version())
	dir := filepath.Join(root, ".cache", "bench", "thanos-"+hex.EncodeToString(h.Sum(nil))[:12])
	bin := filepath.Join(dir, "thanos")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-trimpath", "-tags", ThanosTags, "-o", tmp, "github.com/thanos-io/thanos/cmd/thanos")
	cmd.Dir, cmd.Env = mod, append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build thanos (in %s): %v\n%s", mod, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}
