package gateway_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// rig is a gateway served over real mutual TLS, trusting the client CA
// that registration signs agents' certificates with, with an authenticator
// standing in for registration's (a certificate registration issued, of a
// cluster not deregistered) and routes that answer who called.
type rig struct {
	url   string
	ca    *testbed.CA
	regCA *registration.CA
	reg   *prometheus.Registry
	ready atomic.Bool
	logs  *syncBuffer
	gw    *gateway.Gateway
}

func newRig(t *testing.T) *rig {
	t.Helper()
	r := &rig{ca: testbed.NewCA(t, "agents"), reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	var err error
	if r.regCA, err = registration.LoadCA(r.ca.CertFile, r.ca.KeyFile); err != nil {
		t.Fatal(err)
	}
	lim, err := limits.New(limits.Options{Registerer: r.reg})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := limits.Parse([]byte("clusters:\n  east:\n    request_rate: 0.001\n    request_burst: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	lim.Apply(cfg)
	r.gw = gateway.New(gateway.Options{
		Authenticator: gateway.AuthenticatorFunc(func(_ context.Context, cert *x509.Certificate) (gateway.Identity, error) {
			name, uid := cert.Subject.CommonName, registration.ClusterUID(cert)
			switch {
			case uid == "":
				return gateway.Identity{}, gateway.Unauthorized(fmt.Errorf("client certificate %q was not issued by registration", name))
			case name == "gone":
				return gateway.Identity{}, gateway.Deregistered(fmt.Errorf("cluster %q is not registered with this hub", name))
			}
			return gateway.Identity{Cluster: name, UID: uid}, nil
		}),
		Ready: r.ready.Load, Limits: lim, Registerer: r.reg,
		Logger: slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	logger := slog.New(gateway.LogHandler(slog.NewTextHandler(r.logs, nil)))
	whoami := func(w http.ResponseWriter, req *http.Request) {
		id, ok := gateway.IdentityFrom(req.Context())
		logger.InfoContext(req.Context(), "served", "cluster", id.Cluster)
		fmt.Fprintf(w, "%s/%s/%t", id.Cluster, id.UID, ok)
	}
	r.gw.HandleFunc("POST "+agentapi.PathHeartbeat, whoami)
	r.gw.HandleFunc("/api/v1/write", whoami, gateway.RateLimited())
	r.gw.HandleFunc("GET "+agentapi.PathCA, whoami, gateway.Unauthenticated())
	r.gw.HandleFunc("GET /-/healthy", whoami, gateway.Probe())

	srv := httptest.NewUnstartedServer(r.gw)
	certFile, keyFile := r.ca.Server("hub")
	if srv.TLS, err = gateway.TLSConfig(certFile, keyFile, r.ca.CertFile); err != nil {
		t.Fatal(err)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// registered is a client TLS configuration with a certificate registration
// issued to cluster (for the registration "uid-<cluster>").
func (r *rig) registered(t *testing.T, cluster string) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	certPEM, _, err := r.regCA.Sign(csr, cluster, types.UID("uid-"+cluster), time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: r.ca.Pool(), Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
}

// call sends a request over a new connection with tlsCfg and returns the
// answer, its body (trimmed) and a transport error.
func (r *rig) call(t *testing.T, tlsCfg *tls.Config, method, path string, header http.Header) (*http.Response, string, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlsCfg}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequest(method, r.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, strings.TrimSpace(string(body)), nil
}

// value sums the samples of the metric name whose labels include want.
func (r *rig) value(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func (r *rig) requests(t *testing.T, cluster, handler string, code int) float64 {
	t.Helper()
	return r.value(t, "fleetpulse_hub_agent_requests_total", map[string]string{"cluster": cluster, "handler": handler, "code": fmt.Sprint(code)})
}

// TestAuthentication: a certificate registration issued passes as its
// cluster; none is 401, a static one of the same CA is refused as the
// authenticator says (401), a deregistered cluster's is 403 flagged, and
// one of another CA fails the handshake. An Unauthenticated route serves
// strangers, without an identity. Every answer is counted, by cluster once
// proven, and Forget drops a cluster's counts.
func TestAuthentication(t *testing.T) {
	r := newRig(t)
	r.ready.Store(true)
	east := r.registered(t, "east")
	resp, body, err := r.call(t, east, http.MethodPost, agentapi.PathHeartbeat, nil)
	if err != nil || resp.StatusCode != http.StatusOK || body != "east/uid-east/true" {
		t.Fatalf("east's heartbeat: %v %v %q, want 200 as east of uid-east", resp, err, body)
	}
	anon := r.ca.ClientTLS("")
	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		code    int
		msg     string
		flagged bool
	}{
		{"no certificate", anon, http.StatusUnauthorized, "a client certificate signed by the hub's CA is required", false},
		{"a static certificate of the hub's CA", r.ca.ClientTLS("east"), http.StatusUnauthorized, `client certificate "east" was not issued by registration`, false},
		{"a deregistered cluster's certificate", r.registered(t, "gone"), http.StatusForbidden, `cluster "gone" is not registered with this hub`, true},
	} {
		resp, body, err := r.call(t, tc.tls, http.MethodPost, agentapi.PathHeartbeat, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if resp.StatusCode != tc.code || body != tc.msg {
			t.Errorf("%s: %d %q, want %d %q", tc.name, resp.StatusCode, body, tc.code, tc.msg)
		}
		if flagged := resp.Header.Get(agentapi.HeaderDeregister) == "true"; flagged != tc.flagged {
			t.Errorf("%s: %s %q, want flagged %t", tc.name, agentapi.HeaderDeregister, resp.Header.Get(agentapi.HeaderDeregister), tc.flagged)
		}
	}
	// A Go client keeps back a certificate of a CA the hub does not name
	// (as none), one that sends it anyway fails the handshake.
	foreign := testbed.NewCA(t, "strangers").ClientTLS("east")
	foreign.RootCAs = r.ca.Pool()
	if resp, body, err := r.call(t, foreign, http.MethodPost, agentapi.PathHeartbeat, nil); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a certificate of another CA: %v %v %q, want 401 as for none", resp, err, body)
	}
	pair := foreign.Certificates[0]
	foreign.Certificates = nil
	foreign.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }
	if resp, _, err := r.call(t, foreign, http.MethodPost, agentapi.PathHeartbeat, nil); err == nil {
		t.Errorf("a certificate of another CA, sent: %d, want the handshake refused", resp.StatusCode)
	}
	if resp, body, err := r.call(t, anon, http.MethodGet, agentapi.PathCA, nil); err != nil || resp.StatusCode != http.StatusOK || body != "//false" {
		t.Errorf("an unauthenticated route without a certificate: %v %v %q, want 200 without an identity", resp, err, body)
	}
	for _, want := range []struct {
		cluster string
		code    int
	}{{"east", 200}, {"", 401}, {"", 403}} {
		if got := r.requests(t, want.cluster, agentapi.PathHeartbeat, want.code); got < 1 {
			t.Errorf("requests_total{cluster=%q,code=%d} = %g, want counted", want.cluster, want.code, got)
		}
	}
	if got := r.requests(t, "gone", agentapi.PathHeartbeat, 403); got != 0 {
		t.Errorf("a refused caller is counted under the name it claims: %g", got)
	}
	r.gw.Forget("east")
	if got := r.requests(t, "east", agentapi.PathHeartbeat, 200); got != 0 {
		t.Errorf("east's requests are still counted after Forget: %g", got)
	}
}

// TestRequestID: a caller's request ID is echoed and in the handler's log
// line; a missing or unfit one is replaced by a new one, which the refusal
// is logged with.
func TestRequestID(t *testing.T) {
	r := newRig(t)
	r.ready.Store(true)
	resp, _, err := r.call(t, r.registered(t, "east"), http.MethodPost, agentapi.PathHeartbeat, http.Header{gateway.HeaderRequestID: {"agent-42.a:b_c"}})
	if err != nil || resp.Header.Get(gateway.HeaderRequestID) != "agent-42.a:b_c" {
		t.Fatalf("echoed %q (%v), want agent-42.a:b_c", resp.Header.Get(gateway.HeaderRequestID), err)
	}
	if !strings.Contains(r.logs.String(), "request_id=agent-42.a:b_c") {
		t.Errorf("the handler's log line lacks the request ID:\n%s", r.logs)
	}
	seen := map[string]bool{}
	for _, sent := range []string{"", "has space", strings.Repeat("x", 129), `quote"d`} {
		resp, _, err := r.call(t, r.ca.ClientTLS(""), http.MethodPost, agentapi.PathHeartbeat, http.Header{gateway.HeaderRequestID: {sent}})
		if err != nil {
			t.Fatal(err)
		}
		id := resp.Header.Get(gateway.HeaderRequestID)
		if len(id) != 26 || id == sent || seen[id] {
			t.Errorf("sent %q: request ID %q, want a new ULID", sent, id)
		}
		seen[id] = true
		if !strings.Contains(r.logs.String(), "request_id="+id) {
			t.Errorf("the refusal of a request sent with ID %q is not logged with its ID %s", sent, id)
		}
	}
}

// TestReadiness: until the hub is ready every route answers 503 with
// Retry-After, authenticated or not; probes answer themselves.
func TestReadiness(t *testing.T) {
	r := newRig(t)
	east, anon := r.registered(t, "east"), r.ca.ClientTLS("")
	for _, c := range []struct {
		tls          *tls.Config
		method, path string
	}{{east, http.MethodPost, agentapi.PathHeartbeat}, {anon, http.MethodPost, agentapi.PathHeartbeat}, {anon, http.MethodGet, agentapi.PathCA}} {
		resp, body, err := r.call(t, c.tls, c.method, c.path, nil)
		if err != nil || resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || body != "the hub is not ready; retry" {
			t.Errorf("%s %s before ready: %v %v %q, want 503 with Retry-After", c.method, c.path, resp, err, body)
		}
	}
	if resp, _, err := r.call(t, anon, http.MethodGet, "/-/healthy", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("a probe before ready: %v %v, want its own answer", resp, err)
	}
	r.ready.Store(true)
	if resp, _, err := r.call(t, east, http.MethodPost, agentapi.PathHeartbeat, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("once ready: %v %v, want 200", resp, err)
	}
}

// TestClusterRateLimit: a RateLimited route takes a token of the calling
// cluster's request rate: past its burst, 429 with Retry-After naming the
// limit, counted with the limits; its other routes and other clusters go
// on.
func TestClusterRateLimit(t *testing.T) {
	r := newRig(t)
	r.ready.Store(true)
	east, west := r.registered(t, "east"), r.registered(t, "west")
	for i := range 3 {
		resp, body, err := r.call(t, east, http.MethodPost, "/api/v1/write", nil)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 && resp.StatusCode != http.StatusOK {
			t.Errorf("write %d within the burst: %d %q", i, resp.StatusCode, body)
		}
		if i == 2 && (resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" ||
			body != `too many requests, over the request_rate limit of 0.001 of cluster "east"`) {
			t.Errorf("a write past the burst: %d %q (Retry-After %q), want 429 naming request_rate", resp.StatusCode, body, resp.Header.Get("Retry-After"))
		}
	}
	if resp, _, err := r.call(t, east, http.MethodPost, agentapi.PathHeartbeat, nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("east's heartbeat while its writes are limited: %v %v, want 200", resp, err)
	}
	if resp, _, err := r.call(t, west, http.MethodPost, "/api/v1/write", nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("west's write: %v %v, want 200", resp, err)
	}
	limited := r.value(t, "fleetpulse_hub_ingest_limited_total", map[string]string{"cluster": "east", "limit": limits.RequestRate})
	if counted := r.requests(t, "east", "/api/v1/write", http.StatusTooManyRequests); limited != 1 || counted != 1 {
		t.Errorf("limited_total %g, requests_total{code=429} %g; want 1 each", limited, counted)
	}
}

func TestRefuse(t *testing.T) {
	for _, tc := range []struct {
		err     error
		code    int
		flagged bool
	}{
		{gateway.Unauthorized(errors.New("who")), http.StatusUnauthorized, false},
		{gateway.Forbidden(errors.New("not a name")), http.StatusForbidden, false},
		{fmt.Errorf("look up: %w", gateway.Deregistered(errors.New("gone"))), http.StatusForbidden, true},
		{gateway.Unavailable(errors.New("cache")), http.StatusServiceUnavailable, false},
		{errors.New("anything else"), http.StatusServiceUnavailable, false},
	} {
		w := httptest.NewRecorder()
		gateway.Refuse(w, tc.err)
		flagged := w.Header().Get(agentapi.HeaderDeregister) == "true"
		if w.Code != tc.code || flagged != tc.flagged || strings.TrimSpace(w.Body.String()) != tc.err.Error() {
			t.Errorf("Refuse(%v): %d %q flagged %t, want %d flagged %t", tc.err, w.Code, w.Body, flagged, tc.code, tc.flagged)
		}
	}
}

// TestCommonName: without registration a certificate's common name is the
// cluster, when it is a cluster name.
func TestCommonName(t *testing.T) {
	for cn, want := range map[string]int{"east": 0, "Not_A_Name": http.StatusForbidden, "": http.StatusForbidden} {
		id, err := gateway.CommonName.Authenticate(context.Background(), &x509.Certificate{Subject: pkixName(cn)})
		var ref *gateway.Refusal
		switch {
		case want == 0 && (err != nil || id.Cluster != cn):
			t.Errorf("%q: %+v %v, want the cluster %q", cn, id, err, cn)
		case want != 0 && (!errors.As(err, &ref) || ref.Status != want || ref.Deregistered):
			t.Errorf("%q: %v, want %d not flagged", cn, err, want)
		}
	}
}

// syncBuffer collects log lines written from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }
