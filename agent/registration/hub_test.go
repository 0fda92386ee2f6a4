package registration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fakeHub implements the agentapi contract over TLS, as the gateway does,
// with knobs to refuse. Certificates it issued are remembered by serial;
// forget() makes it refuse them with 401.
type fakeHub struct {
	ca    *testbed.CA
	caPEM []byte // served as the hub's CA bundle
	srv   *httptest.Server
	token string

	mu sync.Mutex
	// Knobs.
	pending          int           // registrations answered Accepted=false first
	retryAfter       int           // RetryAfterSeconds of pending answers
	unavailable      int           // registrations answered 503 first
	registerStatus   int           // when set, registrations are refused with it
	registerMessage  string        // … and this message
	heartbeatStatus  int           // when set, heartbeats are refused with it
	heartbeatMessage string        // … and this message
	deregHeader      bool          // … with agentapi.HeaderDeregister
	ttl              time.Duration // of issued certificates
	period           int           // HeartbeatPeriodSeconds answered; 0 omits it
	// Records.
	caFetches  int
	registers  []agentapi.RegisterRequest
	bearers    []string
	heartbeats []beat
	renewals   int
	issued     map[string]bool // serials of valid certificates
}

type beat struct {
	serial string
	req    agentapi.HeartbeatRequest
}

func newFakeHub(t *testing.T) *fakeHub {
	t.Helper()
	ca := testbed.NewCA(t, "fleetpulse-hub-ca")
	h := &fakeHub{ca: ca, caPEM: ca.CertPEM(), token: "abcdef.0123456789abcdef", ttl: time.Hour, issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathCA, func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		h.caFetches++
		h.mu.Unlock()
		_, _ = w.Write(h.caPEM)
	})
	mux.HandleFunc("POST "+agentapi.PathRegister, h.register)
	mux.HandleFunc("POST "+agentapi.PathHeartbeat, h.heartbeat)
	mux.HandleFunc("POST "+agentapi.PathRenew, h.renew)
	h.srv = httptest.NewUnstartedServer(mux)
	h.srv.TLS = ca.ServerTLS("hub")
	h.srv.TLS.ClientAuth = tls.VerifyClientCertIfGiven // registration comes before a client certificate
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) pin() string { return agentapi.CAHash(h.ca.Cert()) }

func (h *fakeHub) set(f func(h *fakeHub)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

// count reads a record under the hub's lock.
func (h *fakeHub) count(f func(h *fakeHub) int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return f(h)
}

func registrations(h *fakeHub) int { return len(h.registers) }

func bearers(h *fakeHub) int { return h.count(func(h *fakeHub) int { return len(h.bearers) }) }

// forget makes the hub refuse every certificate issued so far (401).
func (h *fakeHub) forget() { h.set(func(h *fakeHub) { h.issued = map[string]bool{} }) }

func (h *fakeHub) register(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bearers = append(h.bearers, r.Header.Get("Authorization"))
	if r.Header.Get("Authorization") != "Bearer "+h.token {
		// The real hub names the token's ID, never the secret; this one
		// echoes what it got, to check that the agent redacts it.
		http.Error(w, "bootstrap token refused: "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")+" expired at 2026-11-01T00:00:00Z", http.StatusUnauthorized)
		return
	}
	var req agentapi.RegisterRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.registers = append(h.registers, req)
	if h.unavailable > 0 {
		h.unavailable--
		http.Error(w, "not ready", http.StatusServiceUnavailable)
		return
	}
	if h.registerStatus != 0 {
		http.Error(w, h.registerMessage, h.registerStatus)
		return
	}
	resp := agentapi.RegisterResponse{ClusterName: req.ClusterName, HeartbeatPeriodSeconds: h.period}
	if h.pending > 0 {
		h.pending--
		resp.Message, resp.RetryAfterSeconds = "waiting for acceptance: fleetpulse hub accept "+req.ClusterName, h.retryAfter
		writeJSONTest(w, resp)
		return
	}
	certPEM, cert, err := h.signCSR(req.CSR, req.ClusterName)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp.Accepted, resp.Certificate, resp.CABundle, resp.NotAfter = true, string(certPEM), string(h.caPEM), cert.NotAfter
	writeJSONTest(w, resp)
}

// identify returns the serial of the caller's certificate, or writes the
// refusal.
func (h *fakeHub) identify(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "a client certificate signed by the hub's CA is required", http.StatusUnauthorized)
		return "", false
	}
	serial := r.TLS.VerifiedChains[0][0].SerialNumber.String()
	if !h.issued[serial] {
		http.Error(w, "client certificate "+serial+" is unknown to this hub", http.StatusUnauthorized)
		return "", false
	}
	return serial, true
}

func (h *fakeHub) heartbeat(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	serial, ok := h.identify(w, r)
	if !ok {
		return
	}
	var req agentapi.HeartbeatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.heartbeats = append(h.heartbeats, beat{serial: serial, req: req})
	if h.heartbeatStatus != 0 {
		if h.deregHeader {
			w.Header().Set(agentapi.HeaderDeregister, "true")
		}
		http.Error(w, h.heartbeatMessage, h.heartbeatStatus)
		return
	}
	writeJSONTest(w, agentapi.HeartbeatResponse{HeartbeatPeriodSeconds: h.period})
}

func (h *fakeHub) renew(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.identify(w, r); !ok {
		return
	}
	var req agentapi.RenewRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	certPEM, cert, err := h.signCSR(req.CSR, r.TLS.VerifiedChains[0][0].Subject.CommonName)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.renewals++
	writeJSONTest(w, agentapi.RenewResponse{Certificate: string(certPEM), CABundle: string(h.caPEM), NotAfter: cert.NotAfter})
}

func (h *fakeHub) signCSR(csrPEM, name string) ([]byte, *x509.Certificate, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, nil, errors.New("csr: want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, nil, err
	}
	if csr.Subject.CommonName != name {
		return nil, nil, fmt.Errorf("csr names %q, want %q", csr.Subject.CommonName, name)
	}
	now := time.Now()
	cert, certPEM, err := h.ca.Sign(csr.PublicKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, NotBefore: now, NotAfter: now.Add(h.ttl),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err == nil {
		h.issued[cert.SerialNumber.String()] = true
	}
	return certPEM, cert, err
}

func writeJSONTest(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// beats returns the heartbeats recorded so far.
func (h *fakeHub) beats() []beat {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]beat(nil), h.heartbeats...)
}

// fakeCluster is a cluster whose apiserver is reachable unless down is set.
type fakeCluster struct {
	mu   sync.Mutex
	down error
}

const testClusterUID = "6f1c2a4e-0000-4000-8000-000000000001"

func (c *fakeCluster) Claims(context.Context) ([]agentapi.Claim, error) {
	if err := c.Healthy(context.Background()); err != nil {
		return nil, err
	}
	return []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: testClusterUID}, {Name: agentapi.ClaimPlatform, Value: "linux/amd64"}}, nil
}

func (c *fakeCluster) Healthy(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// logBuffer collects an agent's logs; safe for the Run goroutine.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newTestAgent builds an agent against h with fast retries.
func newTestAgent(t *testing.T, h *fakeHub, stateDir string, mod func(*Config)) (*Agent, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg := Config{
		Hub: h.srv.URL, ClusterName: "c1", StateDir: stateDir, BootstrapToken: h.token, CAHash: h.pin(),
		AgentVersion: "v0.0.0-test", Cluster: &fakeCluster{},
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.minBackoff, a.maxBackoff, a.pendingPoll = time.Millisecond, 10*time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() {
		if strings.Contains(logs.String(), h.token) {
			t.Errorf("the bootstrap token appears in the logs:\n%s", logs)
		}
	})
	return a, logs
}

func start(t *testing.T, a *Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// run runs a.Run until the test ends and returns its result channel.
func run(t *testing.T, a *Agent) (<-chan error, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done, finished := make(chan error, 1), make(chan struct{})
	go func() {
		defer close(finished)
		done <- a.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-finished
	})
	return done, cancel
}
