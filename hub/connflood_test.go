package hub

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// floodRound is how many connections a flood helper opens at a time.
const floodRound = 1_000

// floodEnv, set, makes TestIdleConnectionFlood's helper process open idle
// connections instead of testing: "<address> <count>".
const floodEnv = "FLEETPULSE_TEST_CONNECTION_FLOOD"

// TestIdleConnectionFlood opens 20,000 idle connections to the users' port
// from one client address (two helper processes, as one process may hold
// only so many files), as an attacker holding keep-alive connections would.
// The hub keeps at most --web.max-connections-per-source of them and
// answers the rest 429; its open files stay far below its limit, and both
// /-/healthy (from another address) and an agent's remote write keep
// answering.
func TestIdleConnectionFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 20,000 connections")
	}
	ca := testbed.NewCA(t, "flood")
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("hub")
	cfg.AgentTLS.ClientCAFile = ca.CertFile
	cfg.Store.Dir = t.TempDir()
	h, _ := runHub(t, cfg)
	// The attacker connects from 127.0.0.2, users' tools from 127.0.0.1.
	usersAddr := h.Addr().String()

	const perProcess = 10_000
	limit := cfg.Web.MaxConnectionsPerSource
	type helper struct {
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var helpers []helper
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestIdleConnectionFloodHelper$", "-test.v")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", floodEnv, usersAddr, perProcess))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// The helper holds its connections until its stdin closes.
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		helpers = append(helpers, helper{stdin, bufio.NewScanner(stdout)})
	}
	// report reads a helper's next "<word> <n>" line.
	report := func(hp helper, word string) int {
		for hp.lines.Scan() {
			if strings.Contains(hp.lines.Text(), "_test.go:") {
				t.Log("helper:", hp.lines.Text())
			}
			if v, ok := strings.CutPrefix(hp.lines.Text(), word+" "); ok {
				n, _ := strconv.Atoi(v)
				return n
			}
		}
		t.Fatalf("connection flood helper stopped before reporting %s: %v", word, hp.lines.Err())
		return 0
	}
	// The helpers dial in rounds, each once the hub has taken the last:
	// faster, the kernel's accept queue overflows and drops connections
	// the hub never sees, which would test the kernel, not the hub.
	// Every connection the helpers open is either refused or accepted;
	// an accepted one the client leaves silent is closed after the
	// header timeout, making room for the next.
	acceptedBefore := metricValue(t, h, "fleetpulse_hub_web_connections_accepted_total")
	seen := func() float64 {
		return metricValue(t, h, "fleetpulse_hub_web_connections_refused_total") +
			metricValue(t, h, "fleetpulse_hub_web_connections_accepted_total") - acceptedBefore
	}
	dialed := 0
	for dialed < 2*perProcess {
		for _, hp := range helpers {
			fmt.Fprintln(hp.stdin, "dial")
			dialed += report(hp, "dialed")
		}
		deadline := time.Now().Add(time.Minute)
		for seen() < float64(dialed) {
			if time.Now().After(deadline) {
				t.Fatalf("the hub took %g of %d connections in a minute", seen(), dialed)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The scrapes' own connection (from 127.0.0.1) is the one more.
		if open := metricValue(t, h, "fleetpulse_hub_web_connections"); open > float64(limit+1) {
			t.Fatalf("the hub holds %g users' connections open, over --web.max-connections-per-source %d", open, limit)
		}
	}
	refused := int(metricValue(t, h, "fleetpulse_hub_web_connections_refused_total"))
	// Held connections time out and make room, so a few more than the
	// limit are served over the run; most are refused.
	if refused < dialed*9/10 {
		t.Errorf("the hub refused %d of %d connections from one address", refused, dialed)
	}
	answered := 0
	for _, hp := range helpers {
		fmt.Fprintln(hp.stdin, "check")
		answered += report(hp, "answered429")
	}
	if answered != refused {
		t.Errorf("%d of the %d refused connections were told why (429)", answered, refused)
	}
	t.Logf("%d idle connections from one address: %d refused with 429, at most %d held at once", dialed, answered, limit)

	// With the flood's connections still open on the client side:
	resp, err := http.Get("http://" + h.Addr().String() + "/-/healthy")
	if err != nil {
		t.Fatalf("/-/healthy during the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/-/healthy during the flood = %s", resp.Status)
	}
	if code := writeOneSample(t, ca, "https://"+h.AgentAddr().String()+"/api/v1/write"); code != http.StatusNoContent {
		t.Errorf("an agent's remote write during the flood = %d, want 204", code)
	}
	if files := openFiles(t); files > 2_000 {
		t.Errorf("the hub process holds %d open files during the flood; its users' port must not eat its file limit", files)
	}
}

// TestIdleConnectionFloodHelper is the flood's helper process (not a test
// of its own): it opens the connections and reports how many; told
// "check", how many the hub answered 429; it holds them until its stdin
// closes.
func TestIdleConnectionFloodHelper(t *testing.T) {
	spec := os.Getenv(floodEnv)
	if spec == "" {
		t.Skip("the helper process of TestIdleConnectionFlood")
	}
	var addr string
	var n int
	if _, err := fmt.Sscan(spec, &addr, &n); err != nil {
		t.Fatalf("%s=%q: %v", floodEnv, spec, err)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: time.Minute}
	var conns []net.Conn
	stdin := bufio.NewScanner(os.Stdin)
	for stdin.Scan() && stdin.Text() == "dial" {
		batch := make([]net.Conn, min(floodRound, n-len(conns)))
		var wg sync.WaitGroup
		next := make(chan int)
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if c, err := dialer.Dial("tcp", addr); err == nil {
						batch[i] = c
					} else {
						t.Errorf("dial: %v", err)
					}
				}
			}()
		}
		for i := range batch {
			next <- i
		}
		close(next)
		wg.Wait()
		conns = append(conns, batch...)
		fmt.Printf("dialed %d\n", len(batch))
	}
	if stdin.Text() != "check" {
		return
	}
	var wg sync.WaitGroup
	// The hub has accepted every connection by now: a refused one reads its
	// 429 at once; one it kept reads nothing (an idle client sends nothing).
	var answered atomic.Int64
	for _, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			b, _ := io.ReadAll(c)
			if bytes.HasPrefix(b, []byte("HTTP/1.1 429")) {
				answered.Add(1)
			}
		}()
	}
	wg.Wait()
	fmt.Printf("answered429 %d\n", answered.Load())
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// writeOneSample remote-writes one sample as cluster-a and returns the
// status code.
func writeOneSample(t *testing.T, ca *testbed.CA, url string) int {
	t.Helper()
	certFile, keyFile := ca.Client("cluster-a")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"}}}
	wr := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "flood_probe"}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}
	raw, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("remote write: %v", err)
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func openFiles(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// metricValue is the value of a metric without labels on /metrics, or -1.
func metricValue(t *testing.T, h *Hub, name string) float64 {
	t.Helper()
	for _, line := range strings.Split(scrape(t, h), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
