package testbed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"time"
)

// Versions of the test bed's components. KubernetesVersion must match the
// replace lines of tools/go.mod.
const (
	KubernetesVersion = "v1.35.4"
	KwokVersion       = "v0.8.0"
)

// Binaries are the built test-bed programs and kwok's stage configuration.
type Binaries struct {
	Dir                                string
	Etcd, APIServer, ControllerManager string
	Scheduler, Kwok, Kubectl           string
	KwokStages                         []string // kwok Stage files moving nodes to Ready and pods to Running
}

// BuildOptions say where the tools module is and where built binaries go.
type BuildOptions struct {
	// ToolsDir is the testbed/tools module. Default: $FLEETPULSE_TESTBED_TOOLS,
	// else testbed/tools found by walking up from the working directory.
	ToolsDir string
	// CacheDir holds built binaries, one folder per tools-module content hash.
	// Default: $FLEETPULSE_TESTBED_CACHE, else .cache/testbed at the repository root.
	CacheDir string
	// Logger reports builds; nil means slog.Default().
	Logger *slog.Logger
}

// EnsureBinaries returns the test bed's binaries, building them first if the
// cache has none for the current tools module. A cold build takes minutes; a
// warm call only checks the cache. Concurrent callers, in this process or
// others, wait for one build through a file lock.
func EnsureBinaries(ctx context.Context, opts BuildOptions) (*Binaries, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	key, err := toolsKey(opts.ToolsDir)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(opts.CacheDir, key)
	err = ensureBuilt(opts.CacheDir, key, "test-bed binaries", opts.ToolsDir, opts.Logger, func(out string) error {
		return build(ctx, opts.ToolsDir, out, opts.Logger)
	})
	if err != nil {
		return nil, err
	}
	return binariesIn(dir), nil
}

// ensureBuilt runs build into cacheDir/key unless a complete build is there.
// A file lock makes concurrent callers, in this process or others, wait for
// one build; a finished build is marked by a "complete" file, and complete
// builds of other keys are removed.
func ensureBuilt(cacheDir, key, what, from string, logger *slog.Logger, build func(dir string) error) error {
	dir := filepath.Join(cacheDir, key)
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return fmt.Errorf("create cache %q: %w", cacheDir, err)
	}
	unlock, err := lockFile(filepath.Join(cacheDir, key+".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		return nil // built by another process while we waited
	}
	start := time.Now()
	logger.Info("building "+what+" (once; takes minutes on a cold cache)", "dir", dir, "from", from)
	if err := build(dir); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "complete"), []byte(time.Since(start).String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("mark %s complete: %w", what, err)
	}
	logger.Info("built "+what, "dir", dir, "took", time.Since(start).Round(time.Second))
	pruneOtherBuilds(cacheDir, key, logger)
	return nil
}

// pruneOtherBuilds removes complete builds of earlier tools-module versions;
// each test-bed build takes about 600 MB.
func pruneOtherBuilds(cacheDir, key string, logger *slog.Logger) {
	entries, err := os.ReadDir(cacheDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		old := filepath.Join(cacheDir, e.Name())
		if !e.IsDir() || e.Name() == key {
			continue
		}
		if _, err := os.Stat(filepath.Join(old, "complete")); err != nil {
			continue // not a finished build; maybe another process's in progress
		}
		if err := os.RemoveAll(old); err == nil {
			_ = os.Remove(old + ".lock")
			logger.Info("removed an earlier build", "dir", old)
		}
	}
}

func binariesIn(dir string) *Binaries {
	bin := filepath.Join(dir, "bin")
	return &Binaries{
		Dir:               dir,
		Etcd:              filepath.Join(bin, "etcd"),
		APIServer:         filepath.Join(bin, "kube-apiserver"),
		ControllerManager: filepath.Join(bin, "kube-controller-manager"),
		Scheduler:         filepath.Join(bin, "kube-scheduler"),
		Kwok:              filepath.Join(bin, "kwok"),
		Kubectl:           filepath.Join(bin, "kubectl"),
		KwokStages:        stagePaths(filepath.Join(dir, "stages")),
	}
}

// kwokStages are the Stage files taken from kwok's module, relative to its
// kustomize/stage folder.
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

func stagePaths(dir string) []string {
	out := make([]string, 0, len(kwokStages))
	for _, s := range kwokStages {
		out = append(out, filepath.Join(dir, filepath.Base(s)))
	}
	return out
}

func (o *BuildOptions) fillDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ToolsDir == "" {
		o.ToolsDir = os.Getenv("FLEETPULSE_TESTBED_TOOLS")
	}
	if o.ToolsDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return err
		}
		o.ToolsDir = filepath.Join(root, "testbed", "tools")
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("FLEETPULSE_TESTBED_CACHE")
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(filepath.Dir(filepath.Dir(o.ToolsDir)), ".cache", "testbed")
	}
	return nil
}

// RepoRoot finds the Fleetpulse repository by walking up from the working
// directory to the folder that holds testbed/tools/go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "testbed", "tools", "go.mod")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("find repository root: no testbed/tools/go.mod above %q; run from the Fleetpulse checkout or set FLEETPULSE_TESTBED_TOOLS", dir)
		}
	}
}

// toolsKey hashes what decides the binaries: the tools module's files, the
// kwok version and the Go toolchain.
func toolsKey(toolsDir string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "etcd/main.go"} {
		b, err := os.ReadFile(filepath.Join(toolsDir, f))
		if err != nil {
			return "", fmt.Errorf("read tools module: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "kwok %s %v\x00go %s\x00", KwokVersion, kwokStages, runtime.Version())
	return KubernetesVersion + "-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// ldflags stamp the Kubernetes version, or the apiserver reports
// v0.0.0-master+$Format:%H$, which kubectl and inventory cannot parse.
var ldflags = "-X k8s.io/component-base/version.gitVersion=" + KubernetesVersion +
	" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35" +
	" -X k8s.io/component-base/version.gitTreeState=clean"

func build(ctx context.Context, toolsDir, dir string, logger *slog.Logger) error {
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return fmt.Errorf("create %q: %w", bin, err)
	}
	steps := []struct {
		name string
		args []string
		env  []string
	}{
		{"etcd", []string{"build", "-trimpath", "-o", filepath.Join(bin, "etcd"), "./etcd"}, nil},
		{"kube-apiserver", []string{"build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(bin, "kube-apiserver"), "k8s.io/kubernetes/cmd/kube-apiserver"}, nil},
		{"kube-controller-manager", []string{"build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(bin, "kube-controller-manager"), "k8s.io/kubernetes/cmd/kube-controller-manager"}, nil},
		{"kube-scheduler", []string{"build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(bin, "kube-scheduler"), "k8s.io/kubernetes/cmd/kube-scheduler"}, nil},
		// kubectl at the server's version, so that the printed commands work on a
		// machine that has none.
		{"kubectl", []string{"build", "-trimpath", "-ldflags", ldflags, "-o", filepath.Join(bin, "kubectl"), "k8s.io/kubernetes/cmd/kubectl"}, nil},
		// kwok builds with its own go.mod (newer k8s.io modules than ours), so it is
		// installed by version rather than built inside the tools module.
		{"kwok", []string{"install", "-trimpath", "sigs.k8s.io/kwok/cmd/kwok@" + KwokVersion}, []string{"GOBIN=" + bin}},
	}
	for _, s := range steps {
		start := time.Now()
		cmd := exec.CommandContext(ctx, "go", s.args...)
		cmd.Dir = toolsDir
		cmd.Env = append(os.Environ(), s.env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %w\n%s", s.name, err, out)
		}
		logger.Info("built", "binary", s.name, "took", time.Since(start).Round(time.Second))
	}
	return copyKwokStages(ctx, toolsDir, filepath.Join(dir, "stages"))
}

// copyKwokStages takes stages that ship in kwok's module: the "fast" node and
// pod stages (nodes Ready at once, pods Running once bound) and the node
// heartbeat that goes with leases.
func copyKwokStages(ctx context.Context, toolsDir, dst string) error {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "sigs.k8s.io/kwok@"+KwokVersion)
	cmd.Dir = toolsDir
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("locate kwok module: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return fmt.Errorf("locate kwok module: no Dir in %q", out)
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return fmt.Errorf("create %q: %w", dst, err)
	}
	for _, f := range kwokStages {
		if err := copyFile(filepath.Join(mod.Dir, "kustomize", "stage", f), filepath.Join(dst, filepath.Base(f))); err != nil {
			return fmt.Errorf("copy kwok stage %s: %w", f, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %q: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %q: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
}
