package testbed

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Prometheus is a real Prometheus server (the Debian package's binary) for
// tests: a remote-write receiver and query API on a loopback port, with its
// TSDB in a directory that survives Stop, so Start brings the same data back.
type Prometheus struct {
	URL    string // http://127.0.0.1:<port>
	Dir    string
	binary string
	port   int
	proc   *process
	t      testing.TB
}

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Config is the prometheus.yml content; empty means no scrape jobs.
	Config string
}

// StartPrometheus starts Prometheus with its remote-write receiver on and
// stops it when the test ends. It fails the test if no prometheus binary is
// on PATH (.ci/run installs Debian's).
func StartPrometheus(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus not on PATH (apt-get install prometheus; .ci/run does): %v", err)
	}
	dir := t.TempDir()
	if opts.Config == "" {
		opts.Config = "global: {}\n"
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(opts.Config), 0o644); err != nil {
		t.Fatal(err)
	}
	port, err := ports.get()
	if err != nil {
		t.Fatal(err)
	}
	p := &Prometheus{URL: "http://127.0.0.1:" + strconv.Itoa(port), Dir: dir, binary: bin, port: port, t: t}
	t.Cleanup(p.Stop)
	p.Start()
	return p
}

// Start starts the server (again) and waits until it is ready.
func (p *Prometheus) Start() {
	p.t.Helper()
	if err := os.MkdirAll(filepath.Join(p.Dir, "logs"), 0o755); err != nil {
		p.t.Fatal(err)
	}
	proc, err := startProcess("prometheus", p.binary, []string{
		"--config.file=" + filepath.Join(p.Dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
		"--web.listen-address=127.0.0.1:" + strconv.Itoa(p.port),
		"--web.enable-remote-write-receiver",
		"--web.enable-lifecycle",
		"--log.level=warn",
	}, filepath.Join(p.Dir, "logs"))
	if err != nil {
		p.t.Fatal(err)
	}
	p.proc = proc
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := proc.waitFor(ctx, "/-/ready", func(ctx context.Context) bool { return httpOK(ctx, p.URL+"/-/ready") }); err != nil {
		p.t.Fatal(err)
	}
}

// Stop stops the server gracefully; its data stays for the next Start.
func (p *Prometheus) Stop() {
	if p.proc != nil {
		p.proc.stop(30 * time.Second)
		p.proc = nil
	}
}

// RemoteWriteURL is the remote-write receiver's URL.
func (p *Prometheus) RemoteWriteURL() string { return p.URL + "/api/v1/write" }

func (p *Prometheus) String() string {
	return fmt.Sprintf("prometheus at %s (data in %s)", p.URL, p.Dir)
}
