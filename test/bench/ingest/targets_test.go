package ingest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// target is one receiver under test, a process of its own. Writes go over
// mutual TLS to writeURL; the operational endpoints (readiness, /metrics
// and, where there is one, the query API) are under baseURL, reached with
// client.
type target struct {
	name     string
	proc     *testbed.Process
	log      string
	writeURL string
	baseURL  string
	client   *http.Client
	// promAPI says baseURL serves the Prometheus query API (Thanos
	// receive serves only the gRPC StoreAPI).
	promAPI bool
	// vm says the target is VictoriaMetrics, whose own metrics differ from
	// the Prometheus TSDB's.
	vm bool
}

// pki is the benchmark's CA with one client certificate per cluster (the
// hub and Thanos receive name the tenant by its common name) and a serving
// certificate shared by every target.
type pki struct {
	ca                 *testbed.CA
	pool               *x509.CertPool
	serverCert, srvKey string
	clients            []tls.Certificate // by cluster index
	operator           tls.Certificate   // for Prometheus's TLS-only endpoints
}

func newPKI(b *testing.B, clusters []string) *pki {
	b.Helper()
	p := &pki{ca: testbed.NewCA(b, "bench-agents"), pool: x509.NewCertPool()}
	caPEM, err := os.ReadFile(p.ca.CertFile)
	if err != nil || !p.pool.AppendCertsFromPEM(caPEM) {
		b.Fatalf("read CA %s: %v", p.ca.CertFile, err)
	}
	p.serverCert, p.srvKey = p.ca.Server("receiver")
	for _, c := range append(clusters, "bench-operator") {
		certFile, keyFile := p.ca.Client(c)
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			b.Fatal(err)
		}
		p.clients = append(p.clients, pair)
	}
	p.operator, p.clients = p.clients[len(p.clients)-1], p.clients[:len(p.clients)-1]
	return p
}

// httpClient is a client presenting cert. Each gets its own transport, so
// each cluster holds its own connection, as agents do; HTTP/1.1 for every
// target, since the hub's agent listener does not offer HTTP/2.
func (p *pki) httpClient(cert tls.Certificate) *http.Client {
	return &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 2,
	}}
}

// startHub runs `fleetpulse hub` with its store in a temp dir. The shipped
// rule packs are off: nothing else evaluates rules during the load.
func startHub(b *testing.B, bin string, p *pki) *target {
	b.Helper()
	dir := b.TempDir()
	httpAddr, agentAddr := testbed.FreeAddr(b), testbed.FreeAddr(b)
	t := start(b, "hub", dir, bin, []string{"hub",
		"--http.listen-address=" + httpAddr, "--agents.listen-address=" + agentAddr,
		"--agents.tls-cert-file=" + p.serverCert, "--agents.tls-key-file=" + p.srvKey, "--agents.client-ca-file=" + p.ca.CertFile,
		"--storage.tsdb.path=" + filepath.Join(dir, "tsdb"), "--rules.no-shipped", "--log.level=warn", "--web.enable-pprof",
	}, "https://"+agentAddr+"/api/v1/write", "http://"+httpAddr, http.DefaultClient)
	t.promAPI = true
	return t
}

// startPrometheus runs Prometheus v3 (bin, built from ../prompeer) with its
// remote-write receiver, for both protocol versions, behind the same mutual
// TLS (web config), so it pays for the same transport; every endpoint then
// wants a client certificate.
func startPrometheus(b *testing.B, bin string, p *pki) *target {
	b.Helper()
	dir := b.TempDir()
	web := fmt.Sprintf("tls_server_config:\n  cert_file: %s\n  key_file: %s\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: %s\n",
		p.serverCert, p.srvKey, p.ca.CertFile)
	for name, content := range map[string]string{"web.yml": web, "prometheus.yml": "global: {}\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	addr := testbed.FreeAddr(b)
	t := start(b, "prometheus", dir, bin, []string{
		"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--web.config.file=" + filepath.Join(dir, "web.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"), "--web.listen-address=" + addr,
		"--web.enable-remote-write-receiver", "--log.level=warn",
		"--web.remote-write-receiver.accepted-protobuf-messages=prometheus.WriteRequest",
		"--web.remote-write-receiver.accepted-protobuf-messages=io.prometheus.write.v2.Request",
	}, "https://"+addr+"/api/v1/write", "https://"+addr, p.httpClient(p.operator))
	t.promAPI = true
	return t
}

// startVictoriaMetrics runs VictoriaMetrics single-node (bin, built from
// ../vmpeer) with its HTTP listener behind TLS with the same serving
// certificate. Verifying client certificates (-mtls) is an Enterprise
// feature, so VictoriaMetrics is the one peer that does not check the
// senders' certificates; the connections are as long-lived as the others'.
// Queries see the newest samples at once (no latency offset), so the
// read-back check can run just after the load.
func startVictoriaMetrics(b *testing.B, bin string, p *pki) *target {
	b.Helper()
	dir := b.TempDir()
	addr := testbed.FreeAddr(b)
	t := start(b, "victoria-metrics", dir, bin, []string{
		"-httpListenAddr=" + addr, "-storageDataPath=" + filepath.Join(dir, "data"),
		"-tls", "-tlsCertFile=" + p.serverCert, "-tlsKeyFile=" + p.srvKey,
		"-retentionPeriod=100y", "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=WARN",
	}, "https://"+addr+"/api/v1/write", "https://"+addr, p.httpClient(p.operator))
	t.promAPI = true
	t.vm = true
	return t
}

// startThanos runs `thanos receive` as a single ingesting node (no
// hashring, no object storage) whose tenant is the client certificate's
// common name, as the hub's is.
func startThanos(b *testing.B, bin string, p *pki) *target {
	b.Helper()
	dir := b.TempDir()
	rw, httpAddr, grpcAddr := testbed.FreeAddr(b), testbed.FreeAddr(b), testbed.FreeAddr(b)
	return start(b, "thanos-receive", dir, bin, []string{"receive",
		"--tsdb.path=" + filepath.Join(dir, "data"), "--remote-write.address=" + rw,
		"--http-address=" + httpAddr, "--grpc-address=" + grpcAddr,
		"--remote-write.server-tls-cert=" + p.serverCert, "--remote-write.server-tls-key=" + p.srvKey,
		"--remote-write.server-tls-client-ca=" + p.ca.CertFile,
		"--receive.tenant-certificate-field=commonName", `--label=receive_replica="0"`, "--log.level=warn",
	}, "https://"+rw+"/api/v1/receive", "http://"+httpAddr, http.DefaultClient)
}

// start starts a target's process, pinned to the last core (taskset), and
// waits until it answers /-/ready. Pinned, every receiver has the same one
// core however many it would take (the Go runtime of each sizes GOMAXPROCS
// from its affinity), and the senders keep the other cores.
func start(b *testing.B, name, dir, bin string, args []string, writeURL, baseURL string, client *http.Client) *target {
	b.Helper()
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		b.Fatalf("taskset (util-linux) not on PATH: %v", err)
	}
	if err := dropFromPageCache(bin); err != nil {
		b.Fatal(err)
	}
	core := fmt.Sprint(runtime.NumCPU() - 1)
	proc, err := testbed.StartProcess(name, taskset, append([]string{"-c", core, bin}, args...), dir)
	if err != nil {
		b.Fatal(err)
	}
	t := &target{name: name, proc: proc, log: filepath.Join(dir, name+".log"), writeURL: writeURL, baseURL: baseURL, client: client}
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("%s log (last lines):\n%s", name, t.tail(20))
		}
		proc.Stop(30 * time.Second)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := t.poll(ctx, "/-/ready", func() error { return t.get(ctx, "/-/ready", nil) }); err != nil {
		b.Fatal(err)
	}
	return t
}

// dropFromPageCache asks the kernel to drop the cached pages of the file
// at path, so that every receiver's binary is read from disk as it starts.
// How much of a binary a process maps counts in its RSS, and depends on how
// the file came into the page cache: a binary the linker has just written
// sits there in large folios, which the kernel maps whole (2 MiB at a
// time), where one read from disk is mapped page by page as it is touched.
// The hub, built by the benchmark, was the one freshly written: 120 MiB of
// its RSS were its binary, against 80 MiB read from disk.
func dropFromPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// Dirty pages are not dropped: write them first.
	if err := f.Sync(); err != nil {
		return err
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return fmt.Errorf("dropping %s from the page cache: %w", path, err)
	}
	return nil
}

// alive reports an error once the process has ended.
func (t *target) alive() error {
	if err := syscall.Kill(t.proc.PID(), 0); errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s has exited; last lines of its log:\n%s", t.name, t.tail(20))
	}
	return nil
}

// poll calls cond every 100ms until it succeeds, the process ends, or ctx
// ends.
func (t *target) poll(ctx context.Context, what string, cond func() error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if aerr := t.alive(); aerr != nil {
			return fmt.Errorf("%s: waiting for %s: %w", t.name, what, aerr)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s: %v (last: %v)", t.name, what, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// get GETs path under baseURL and hands a 200 body to read (if any).
func (t *target) get(ctx context.Context, path string, read func(*http.Response) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.baseURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	if read == nil {
		return nil
	}
	return read(resp)
}

func (t *target) tail(n int) string {
	data, _ := os.ReadFile(t.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
