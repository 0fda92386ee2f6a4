package registration

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// testCA signs the fake hub's serving certificate and agents' certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

var serials struct {
	sync.Mutex
	n int64
}

func nextSerial() *big.Int {
	serials.Lock()
	defer serials.Unlock()
	serials.n++
	return big.NewInt(serials.n + 100)
}

func (ca *testCA) sign(pub any, tmpl *x509.Certificate) ([]byte, *x509.Certificate, error) {
	tmpl.SerialNumber = nextSerial()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, nil, err
	}
	c, _ := x509.ParseCertificate(der)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), c, nil
}

func (ca *testCA) serverCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := ca.sign(&key.PublicKey, &x509.Certificate{
		Subject: pkix.Name{CommonName: "hub"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// fakeHub implements the agentapi contract over TLS, as the gateway does,
// with knobs to refuse. Certificates it issued are remembered by serial;
// forget() makes it refuse them with 401.
type fakeHub struct {
	ca    *testCA
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
	h := &fakeHub{ca: newTestCA(t, "fleetpulse-hub-ca"), token: "abcdef.0123456789abcdef", ttl: time.Hour, issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathCA, func(w http.ResponseWriter, _ *http.Request) {
		h.mu.Lock()
		h.caFetches++
		h.mu.Unlock()
		_, _ = w.Write(h.ca.pem)
	})
	mux.HandleFunc("POST "+agentapi.PathRegister, h.register)
	mux.HandleFunc("POST "+agentapi.PathHeartbeat, h.heartbeat)
	mux.HandleFunc("POST "+agentapi.PathRenew, h.renew)
	pool := x509.NewCertPool()
	pool.AddCert(h.ca.cert)
	h.srv = httptest.NewUnstartedServer(mux)
	h.srv.TLS = &tls.Config{Certificates: []tls.Certificate{h.ca.serverCert(t)}, ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	return h
}

func (h *fakeHub) pin() string { return agentapi.CAHash(h.ca.cert) }

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
	resp.Accepted, resp.Certificate, resp.CABundle, resp.NotAfter = true, string(certPEM), string(h.ca.pem), cert.NotAfter
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
	writeJSONTest(w, agentapi.RenewResponse{Certificate: string(certPEM), CABundle: string(h.ca.pem), NotAfter: cert.NotAfter})
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
	certPEM, cert, err := h.ca.sign(csr.PublicKey, &x509.Certificate{
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

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
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
