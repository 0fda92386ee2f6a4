package hub

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentConnectionsAreLimited: with --agents.max-connections 2, a third
// agent's TLS handshake does not complete while two connections are open,
// and completes once one closes; the metrics count the open connections
// and show the limit. Silent connections (no handshake) cannot hold the
// limit: they are closed after the handshake timeout.
func TestAgentConnectionsAreLimited(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
	cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("hub")
	cfg.AgentTLS.ClientCAFile = ca.CertFile
	cfg.AgentMaxConnections = 2
	cfg.AgentHandshakeTimeout = 5 * time.Second
	cfg.Store.Dir = t.TempDir()
	h, _ := runHub(t, cfg)

	certFile, keyFile := ca.Client("cluster-a")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, ServerName: "localhost"}
	// handshake connects and completes a TLS handshake within d.
	handshake := func(d time.Duration) (*tls.Conn, error) {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: d, Deadline: time.Now().Add(d)}, "tcp", h.AgentAddr().String(), tlsCfg)
		if err != nil {
			return nil, err
		}
		return conn, nil
	}
	first, err := handshake(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	second, err := handshake(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitMetric(t, h, "fleetpulse_hub_agent_connections 2")
	waitMetric(t, h, "fleetpulse_hub_agent_connections_limit 2")
	if third, err := handshake(500 * time.Millisecond); err == nil {
		third.Close()
		t.Fatal("a third connection was served while two were open, over the limit of 2")
	}
	first.Close()
	third, err := handshake(10 * time.Second)
	if err != nil {
		t.Fatalf("a connection after one closed: %v", err)
	}
	third.Close()
	second.Close()

	// Two connections that never say a word take both places, for the
	// handshake timeout only: an agent gets in after them.
	for range 2 {
		silent, err := net.Dial("tcp", h.AgentAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer silent.Close()
	}
	agent, err := handshake(10 * time.Second)
	if err != nil {
		t.Fatalf("an agent behind two silent connections: %v", err)
	}
	agent.Close()
}

// waitMetric polls the hub's /metrics until a line equals want.
func waitMetric(t *testing.T, h *Hub, want string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		last, err := fetchMetrics(h)
		if err != nil {
			return err
		}
		for _, line := range strings.Split(last, "\n") {
			if line == want {
				return nil
			}
		}
		return fmt.Errorf("no metric line %q in /metrics:\n%s", want, grepLines(last, strings.Fields(want)[0]))
	})
}

func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func scrape(t *testing.T, h *Hub) string {
	t.Helper()
	body, err := fetchMetrics(h)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// fetchMetrics returns the hub's /metrics page; it may run off the test's
// goroutine.
func fetchMetrics(h *Hub) (string, error) {
	resp, err := http.Get("http://" + h.Addr().String() + "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}
