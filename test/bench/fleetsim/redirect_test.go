package fleetsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestFleetFollowsRedirectsAndRetries runs a fleet against two replicas, as
// hub replicas in a ring answer: the one the fleet is configured with
// registers clusters and answers their authenticated calls 307 to the
// other, which owns every cluster and refuses each cluster's first
// heartbeat with 503 and Retry-After: 1. Every heartbeat and write lands at
// the owner with its body, the refused heartbeat is repeated a second later
// rather than a period later, and each cluster keeps one connection to each
// replica.
func TestFleetFollowsRedirectsAndRetries(t *testing.T) {
	t.Parallel()
	tca := testbed.NewCA(t, "sim-agents")
	ca, err := registration.LoadCA(tca.CertFile, tca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	certFile, keyFile := tca.Server("hub")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	start := func(h http.Handler) (*httptest.Server, *atomic.Int64) {
		srv := httptest.NewUnstartedServer(h)
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
		conns := &atomic.Int64{}
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.StartTLS()
		t.Cleanup(srv.Close)
		return srv, conns
	}
	g := &fakeGateway{t: t, ca: ca, registers: map[string]int{}, heartbeats: map[string]int{}, writes: map[string]int{}}
	var (
		mu      sync.Mutex
		refused = map[string]time.Time{}
	)
	owner, ownerConns := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == agentapi.PathHeartbeat && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			name := r.TLS.VerifiedChains[0][0].Subject.CommonName
			mu.Lock()
			_, seen := refused[name]
			if !seen {
				refused[name] = time.Now()
			}
			mu.Unlock()
			if !seen {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "no healthy owner yet", http.StatusServiceUnavailable)
				return
			}
		}
		g.ServeHTTP(w, r)
	}))
	entry, entryConns := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == agentapi.PathRegister {
			g.ServeHTTP(w, r)
			return
		}
		http.Redirect(w, r, owner.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	caPEM, err := os.ReadFile(tca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	const clusters, period = 4, 6 * time.Second
	cfg := DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = entry.URL, roots, "tok", clusters
	cfg.HeartbeatPeriod, cfg.CollectionInterval, cfg.RegisterConcurrency, cfg.Workers = period, 300*time.Millisecond, 2, 4
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Register(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()

	ownerHost := owner.Listener.Addr().String()
	testutil.Eventually(t, 3*period, func() error {
		for _, name := range f.Names() {
			beats, writes := g.counts(name)
			if beats < 1 || writes < 3 {
				return &pendingError{name, beats, writes}
			}
		}
		return nil
	})
	for name, l := range f.Landings() {
		if l.HeartbeatHost != ownerHost || l.WriteHost != ownerHost {
			t.Errorf("%s landed at %s (heartbeat) and %s (write), want the owner %s", name, l.HeartbeatHost, l.WriteHost, ownerHost)
		}
		// The refused first heartbeat came back after Retry-After, before
		// the period.
		mu.Lock()
		first := refused[name]
		mu.Unlock()
		if d := l.HeartbeatAt.Sub(first); d < time.Second || d >= period {
			t.Errorf("%s: heartbeat acknowledged %s after the refusal, want about Retry-After (1s)", name, d)
		}
	}
	if n := ownerConns.Load(); n > clusters {
		t.Errorf("the owner saw %d connections from %d clusters, want one each", n, clusters)
	}
	// Registration's shared connections plus one per cluster.
	if n := entryConns.Load(); n > clusters+int64(cfg.RegisterConcurrency) {
		t.Errorf("the entry replica saw %d connections, want at most %d", n, clusters+cfg.RegisterConcurrency)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.badWrite != "" {
		t.Errorf("a redirected write arrived changed: %s", g.badWrite)
	}
}

type pendingError struct {
	name          string
	beats, writes int
}

func (e *pendingError) Error() string {
	return e.name + ": waiting for heartbeats and writes at the owner"
}
