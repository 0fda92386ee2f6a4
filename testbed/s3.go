package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/thanos-io/objstore"
	"github.com/thanos-io/objstore/client"
)

// SeaweedFSVersion is the SeaweedFS module that testbed/s3tools builds the S3
// server (weed) from; it must match s3tools/go.mod.
const SeaweedFSVersion = "v0.0.0-20261109003541-7506e5f91cd6"

// S3BuildOptions say where the s3tools module is and where the built weed
// binary goes.
type S3BuildOptions struct {
	// ToolsDir is the testbed/s3tools module. Default:
	// $FLEETPULSE_TESTBED_S3TOOLS, else testbed/s3tools at the repository root.
	ToolsDir string
	// CacheDir holds built binaries, one folder per s3tools-module content
	// hash. Default: $FLEETPULSE_S3_CACHE, else .cache/s3server at the
	// repository root.
	CacheDir string
	// Logger reports builds; nil means slog.Default().
	Logger *slog.Logger
}

func (o *S3BuildOptions) fillDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ToolsDir == "" {
		o.ToolsDir = os.Getenv("FLEETPULSE_TESTBED_S3TOOLS")
	}
	if o.CacheDir == "" {
		o.CacheDir = os.Getenv("FLEETPULSE_S3_CACHE")
	}
	if o.ToolsDir != "" && o.CacheDir != "" {
		return nil
	}
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	if o.ToolsDir == "" {
		o.ToolsDir = filepath.Join(root, "testbed", "s3tools")
	}
	if o.CacheDir == "" {
		o.CacheDir = filepath.Join(root, ".cache", "s3server")
	}
	return nil
}

// EnsureS3Server returns the path of SeaweedFS's weed binary, building it
// first if the cache has none for the current s3tools module (a cold build
// takes minutes: see the README's Measured). Concurrent callers, in this
// process or others, wait for one build through a file lock.
func EnsureS3Server(ctx context.Context, opts S3BuildOptions) (string, error) {
	if err := opts.fillDefaults(); err != nil {
		return "", err
	}
	key, err := s3ToolsKey(opts.ToolsDir)
	if err != nil {
		return "", err
	}
	weed := filepath.Join(opts.CacheDir, key, "bin", "weed")
	err = ensureBuilt(opts.CacheDir, key, "the S3 server (SeaweedFS weed)", opts.ToolsDir, opts.Logger, func(out string) error {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(out, "bin", "weed"),
			"github.com/seaweedfs/seaweedfs/weed")
		cmd.Dir = opts.ToolsDir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build weed in %s: %w\n%s", opts.ToolsDir, err, out)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	return weed, nil
}

// s3ToolsKey hashes what decides the binary: the s3tools module and the Go
// toolchain.
func s3ToolsKey(toolsDir string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(toolsDir, f))
		if err != nil {
			return "", fmt.Errorf("read s3tools module: %w", err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "go %s\x00", runtime.Version())
	return "seaweedfs-" + hex.EncodeToString(h.Sum(nil))[:12], nil
}

// S3 is a real S3 server for tests: SeaweedFS (master, volume server, filer
// and S3 gateway in one `weed server` process) on loopback ports, with one
// identity allowed everything and one bucket, created before StartS3 returns.
type S3 struct {
	Endpoint  string // 127.0.0.1:<port>, plain HTTP
	Region    string
	AccessKey string
	SecretKey string // random for every server: a test can look for it in logs
	Bucket    string
	Dir       string // data, config and logs/weed.log
	proc      *process
	sockets   []string
}

var (
	s3BinOnce sync.Once
	s3Bin     string
	s3BinErr  error
)

// StartS3 starts a SeaweedFS S3 server for the test and stops it when the
// test ends (printing its log's tail when the test failed). weed is built
// on first use if the cache has none (`make test` builds it beforehand).
func StartS3(t testing.TB) *S3 {
	t.Helper()
	s3BinOnce.Do(func() {
		s3Bin, s3BinErr = EnsureS3Server(context.Background(), S3BuildOptions{})
	})
	if s3BinErr != nil {
		t.Fatalf("S3 server binary: %v", s3BinErr)
	}
	s := &S3{Region: "us-east-1", AccessKey: "fleetpulse-" + randomHex(t, 8), SecretKey: randomHex(t, 20), Bucket: "fleetpulse-blocks", Dir: t.TempDir()}
	identities, err := json.Marshal(map[string]any{"identities": []map[string]any{{
		"name":        "fleetpulse",
		"credentials": []map[string]string{{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"config", "logs"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "config", "s3.json"), identities, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.proc == nil {
			return
		}
		if t.Failed() {
			t.Logf("S3 server (weed), last lines of %s:\n%s", s.proc.logPath, s.proc.logTail(30))
		}
		s.stop()
	})
	// Another process may take a port between allocation and use: retry on
	// new ports, as StartCluster does.
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := s.start()
		if err == nil {
			t.Logf("%s: ready in %s", s, time.Since(start).Round(time.Millisecond))
			return s
		}
		if attempt == 3 || s.proc == nil || !s.proc.portInUse() {
			t.Fatal(err)
		}
		s.stop()
		t.Logf("S3 server lost a port race, retrying: %v", err)
	}
}

func (s *S3) start() error {
	p, err := ports.getN(8)
	if err != nil {
		return err
	}
	port := func(i int) string { return strconv.Itoa(p[i]) }
	// weed serves each gRPC port on /tmp/seaweedfs-<service>-grpc-<port>.sock
	// too, whatever its flags say.
	s.sockets = nil
	for name, i := range map[string]int{"master": 1, "volume": 3, "filer": 5, "s3": 7} {
		s.sockets = append(s.sockets, fmt.Sprintf("/tmp/seaweedfs-%s-grpc-%d.sock", name, p[i]))
	}
	s.Endpoint = "127.0.0.1:" + port(6)
	// A fresh data folder: a failed attempt's raft state names other ports.
	data := filepath.Join(s.Dir, "data")
	if err := os.RemoveAll(data); err != nil {
		return err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	args := []string{
		"-logtostderr", "-config_dir=" + filepath.Join(s.Dir, "config"),
		"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		// No usage statistics to the internet.
		"-master.telemetry=false",
		"-master.port=" + port(0), "-master.port.grpc=" + port(1), "-master.volumeSizeLimitMB=64",
		"-volume.port=" + port(2), "-volume.port.grpc=" + port(3), "-volume.max=16", "-volume.preStopSeconds=0",
		"-filer", "-filer.port=" + port(4), "-filer.port.grpc=" + port(5),
		"-s3", "-s3.port=" + port(6), "-s3.port.grpc=" + port(7), "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-s3.config=" + filepath.Join(s.Dir, "config", "s3.json"),
	}
	// Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them with
	// the data when the path fits a socket address.
	if len(data) < 80 {
		args = append(args, "-filer.localSocket="+filepath.Join(data, "filer.sock"), "-s3.localSocket="+filepath.Join(data, "s3.sock"))
	}
	proc, err := startProcess("weed", s3Bin, args, filepath.Join(s.Dir, "logs"))
	if err != nil {
		return err
	}
	s.proc = proc
	bkt, err := s.NewBucket()
	if err != nil {
		return err
	}
	defer bkt.Close()
	// Ready when an object can be written: master, volume server, filer and
	// gateway all answer. The first upload creates the bucket (weed's
	// -s3.autoCreateBucket, for admin identities); the probe is removed.
	// Uploads wait for the gateway's port, since the S3 client retries a
	// refused connection with backoff for longer than an attempt lasts.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := proc.waitFor(ctx, "the S3 port", func(ctx context.Context) bool { return httpAnswers(ctx, "http://"+s.Endpoint+"/") }); err != nil {
		return err
	}
	const probe = ".fleetpulse-ready"
	var last error
	err = proc.waitFor(ctx, "an S3 upload to succeed", func(ctx context.Context) bool {
		// The first write waits for the filer to join the master and for
		// volumes to be allocated, several seconds on a fresh server.
		c, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		last = bkt.Upload(c, probe, bytes.NewReader([]byte("ok")))
		return last == nil
	})
	if err != nil {
		return fmt.Errorf("%w (last upload error: %v)", err, last)
	}
	if err := bkt.Delete(ctx, probe); err != nil {
		return fmt.Errorf("delete readiness probe: %w", err)
	}
	return nil
}

// stop ends the server. weed stops its volume server and filer on SIGTERM
// but its master waits for the S3 gateway's streams, which never end: after
// a short grace it is killed, and the gRPC sockets it leaves in /tmp are
// removed. The test's data goes with the test anyway.
func (s *S3) stop() {
	s.proc.stop(3 * time.Second)
	for _, sock := range s.sockets {
		_ = os.Remove(sock)
	}
}

// BucketConfig is the Thanos object-storage configuration (YAML) of the
// server's bucket, as the hub's --storage.bucket.config-file takes it.
func (s *S3) BucketConfig() string {
	return fmt.Sprintf(`type: S3
config:
  bucket: %q
  endpoint: %q
  region: %q
  access_key: %q
  secret_key: %q
  insecure: true
  bucket_lookup_type: path
`, s.Bucket, s.Endpoint, s.Region, s.AccessKey, s.SecretKey)
}

// NewBucket returns an objstore client of the server's bucket, built from
// BucketConfig through objstore's client as the hub builds its own.
func (s *S3) NewBucket() (objstore.Bucket, error) {
	bkt, err := client.NewBucket(log.NewNopLogger(), []byte(s.BucketConfig()), "fleetpulse-testbed", nil)
	if err != nil {
		return nil, fmt.Errorf("S3 bucket client: %w", err)
	}
	return bkt, nil
}

func (s *S3) String() string {
	return fmt.Sprintf("S3 server (SeaweedFS) at http://%s, bucket %s (data in %s)", s.Endpoint, s.Bucket, s.Dir)
}

// httpAnswers reports whether url answers HTTP at all (S3 answers an
// unsigned request with 403).
func httpAnswers(ctx context.Context, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return true
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// BucketConfigFile writes BucketConfig to a file in a temporary folder of
// the test and returns its path, for --storage.bucket.config-file and
// --objstore.config-file.
func (s *S3) BucketConfigFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bucket.yaml")
	if err := os.WriteFile(path, []byte(s.BucketConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
