package testbed

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// ThanosStoreOptions configure StartThanosStore.
type ThanosStoreOptions struct {
	// BucketConfig is the object-storage configuration (YAML) of the bucket
	// to serve, as S3.BucketConfig gives it.
	BucketConfig string
	// Args are more flags for `thanos store`.
	Args []string
}

// ThanosQueryOptions configure StartThanosQuery.
type ThanosQueryOptions struct {
	// Endpoints are the StoreAPIs (host:port) to query.
	Endpoints []string
	// StartingLater are endpoints (among Endpoints) that start after thanos
	// query: StartThanosQuery does not wait for them.
	StartingLater []string
	// ReplicaLabels are the labels thanos query deduplicates series by
	// (--query.replica-label).
	ReplicaLabels []string
	// Args are more flags for `thanos query`.
	Args []string
}

// Thanos is one Thanos component (`thanos store`, `thanos query`) that a
// test runs from ThanosBinary on free loopback ports.
type Thanos struct {
	Component string // store or query
	HTTPAddr  string // 127.0.0.1:<port>: /-/ready, metrics, and query's /api/v1
	GRPCAddr  string // 127.0.0.1:<port>: the StoreAPI
	Dir       string // data, and logs/thanos-<component>.log
	proc      *process
}

// URL is the component's HTTP address as a URL, for an API client.
func (th *Thanos) URL() string { return "http://" + th.HTTPAddr }

func (th *Thanos) String() string {
	return fmt.Sprintf("thanos %s at http://%s (gRPC %s, log %s)", th.Component, th.HTTPAddr, th.GRPCAddr, th.proc.logPath)
}

// thanosReadyWithin bounds a component's start: thanos store syncs the
// bucket's block metadata first, and thanos query asks each endpoint's Info
// on its own schedule (every 5 s).
const thanosReadyWithin = 2 * time.Minute

// StartThanosStore runs `thanos store` over the bucket until the test ends
// and returns once it is ready: its initial sync of the bucket done, its
// StoreAPI serving. Blocks uploaded later are seen after the next sync
// (--sync-block-duration, 3 m by default). When the test failed, the tail
// of its log is printed.
func StartThanosStore(t testing.TB, opts ThanosStoreOptions) *Thanos {
	t.Helper()
	if opts.BucketConfig == "" {
		t.Fatal("StartThanosStore: no bucket configuration")
	}
	dir := t.TempDir()
	bucketFile := filepath.Join(dir, "bucket.yaml")
	if err := os.WriteFile(bucketFile, []byte(opts.BucketConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--objstore.config-file=" + bucketFile, "--data-dir=" + filepath.Join(dir, "data"),
		// The blocks were uploaded a moment ago: serve them now rather than
		// wait the default 30 m in case an upload is still going on.
		"--consistency-delay=0s"}, opts.Args...)
	return startThanos(t, "store", dir, args, nil)
}

// StartThanosQuery runs `thanos query` over the endpoints until the test
// ends and returns once it is ready and has reached every endpoint but
// those StartingLater (each listed healthy in its /api/v1/stores). When the
// test failed, the tail of its log is printed.
func StartThanosQuery(t testing.TB, opts ThanosQueryOptions) *Thanos {
	t.Helper()
	var args []string
	for _, e := range opts.Endpoints {
		args = append(args, "--endpoint="+e)
	}
	for _, l := range opts.ReplicaLabels {
		args = append(args, "--query.replica-label="+l)
	}
	args = append(args, opts.Args...)
	var awaited []string
	for _, e := range opts.Endpoints {
		if !slices.Contains(opts.StartingLater, e) {
			awaited = append(awaited, e)
		}
	}
	return startThanos(t, "query", t.TempDir(), args, func(ctx context.Context, th *Thanos) error {
		return queryReaches(ctx, th.HTTPAddr, awaited)
	})
}

// RunThanosCompact runs `thanos compact` over the bucket once (without
// --wait) and fails the test, with the command's output, if it fails.
func RunThanosCompact(t testing.TB, bucketConfig string, args ...string) {
	t.Helper()
	dir := t.TempDir()
	bucketFile := filepath.Join(dir, "bucket.yaml")
	if err := os.WriteFile(bucketFile, []byte(bucketConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	// The blocks were made a moment ago, and the compactor leaves blocks
	// younger than --consistency-delay (30 m) alone, as possibly still
	// uploading.
	args = append([]string{"compact", "--objstore.config-file=" + bucketFile, "--data-dir=" + filepath.Join(dir, "data"),
		"--http-address=" + FreeAddr(t), "--consistency-delay=0s", "--log.level=warn"}, args...)
	if out, err := exec.Command(ThanosBinary(t), args...).CombinedOutput(); err != nil {
		t.Fatalf("thanos compact: %v\n%s", err, out)
	}
}

// startThanos starts a component with its addresses and args, waits for its
// /-/ready and then for ready (if not nil), and stops it when the test ends. A port
// taken by another process between allocation and use means a retry on new
// ports, as StartS3 does.
func startThanos(t testing.TB, component, dir string, args []string, ready func(context.Context, *Thanos) error) *Thanos {
	t.Helper()
	bin := ThanosBinary(t)
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	th := &Thanos{Component: component, Dir: dir}
	t.Cleanup(func() {
		if th.proc == nil {
			return
		}
		if t.Failed() {
			t.Logf("thanos %s, last lines of %s:\n%s", component, th.proc.logPath, th.proc.logTail(40))
		}
		th.proc.stop(5 * time.Second)
	})
	start := time.Now()
	for attempt := 1; ; attempt++ {
		err := th.start(bin, args, ready)
		if err == nil {
			t.Logf("%s: ready in %s", th, time.Since(start).Round(time.Millisecond))
			return th
		}
		if attempt == 3 || th.proc == nil || !th.proc.portInUse() {
			t.Fatal(err)
		}
		th.proc.stop(5 * time.Second)
		t.Logf("thanos %s lost a port race, retrying: %v", component, err)
	}
}

func (th *Thanos) start(bin string, args []string, ready func(context.Context, *Thanos) error) error {
	p, err := ports.getN(2)
	if err != nil {
		return err
	}
	th.HTTPAddr, th.GRPCAddr = fmt.Sprintf("127.0.0.1:%d", p[0]), fmt.Sprintf("127.0.0.1:%d", p[1])
	all := append([]string{th.Component, "--http-address=" + th.HTTPAddr, "--grpc-address=" + th.GRPCAddr,
		// The test's end stops it: no connections to drain.
		"--http-grace-period=0s", "--grpc-grace-period=0s"}, args...)
	// A retry appends to the same log, after the failed attempt's lines.
	proc, err := startProcess("thanos-"+th.Component, bin, all, filepath.Join(th.Dir, "logs"))
	if err != nil {
		return err
	}
	th.proc = proc
	ctx, cancel := context.WithTimeout(context.Background(), thanosReadyWithin)
	defer cancel()
	if err := proc.waitFor(ctx, "/-/ready", func(ctx context.Context) bool {
		return httpStatus(ctx, th.URL()+"/-/ready") == http.StatusOK
	}); err != nil {
		return err
	}
	if ready == nil {
		return nil
	}
	var last error
	if err := proc.waitFor(ctx, "its endpoints", func(ctx context.Context) bool {
		last = ready(ctx, th)
		return last == nil
	}); err != nil {
		return fmt.Errorf("%w (last: %v)", err, last)
	}
	return nil
}

// queryReaches checks that thanos query lists every endpoint among its
// stores with a successful last check.
func queryReaches(ctx context.Context, httpAddr string, endpoints []string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/api/v1/stores", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read /api/v1/stores: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/api/v1/stores: %s: %s", resp.Status, body)
	}
	var stores struct {
		Data map[string][]struct {
			Name      string  `json:"name"`
			LastError *string `json:"lastError"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &stores); err != nil {
		return fmt.Errorf("parse /api/v1/stores: %w", err)
	}
	var healthy []string
	for _, ss := range stores.Data {
		for _, s := range ss {
			if s.LastError == nil {
				healthy = append(healthy, s.Name)
			}
		}
	}
	for _, e := range endpoints {
		if !slices.Contains(healthy, e) {
			return fmt.Errorf("endpoint %s not among thanos query's healthy stores %v: %s", e, healthy, body)
		}
	}
	return nil
}

// httpStatus is url's status code, or 0 when it does not answer.
func httpStatus(ctx context.Context, url string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}
