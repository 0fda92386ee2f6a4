package fleetsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
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

// replicaRig is a fleet's view of hub replicas in a ring: an entry replica,
// the one the fleet is configured with, registers clusters and answers
// their authenticated calls 307 to the owner it currently names.
type replicaRig struct {
	t          *testing.T
	g          *fakeGateway
	pair       tls.Certificate
	pool, root *x509.CertPool

	entry      *httptest.Server
	entryConns *connCounts
	redirected atomic.Int64           // authenticated calls the entry redirected
	owner      atomic.Pointer[string] // the URL the entry redirects to
}

type connCounts struct{ made, open atomic.Int64 }

func newReplicaRig(t *testing.T) *replicaRig {
	tca := testbed.NewCA(t, "sim-agents")
	ca, err := registration.LoadCA(tca.CertFile, tca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	r := &replicaRig{t: t, pool: x509.NewCertPool(), root: x509.NewCertPool(),
		g: &fakeGateway{t: t, ca: ca, registers: map[string]int{}, heartbeats: map[string]int{}, writes: map[string]int{}}}
	r.pool.AppendCertsFromPEM(ca.CertPEM)
	certFile, keyFile := tca.Server("hub")
	if r.pair, err = tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(tca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	r.root.AppendCertsFromPEM(caPEM)
	r.entry, r.entryConns = r.start(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == agentapi.PathRegister {
			r.g.ServeHTTP(w, req)
			return
		}
		r.redirected.Add(1)
		http.Redirect(w, req, *r.owner.Load()+req.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	return r
}

// start serves h over TLS with client certificates, counting connections.
func (r *replicaRig) start(h http.Handler) (*httptest.Server, *connCounts) {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.pair}, ClientCAs: r.pool, ClientAuth: tls.VerifyClientCertIfGiven}
	conns := &connCounts{}
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.made.Add(1)
			conns.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.open.Add(-1)
		}
	}
	srv.StartTLS()
	r.t.Cleanup(srv.Close)
	return srv, conns
}

// startOwner serves h as the owner the entry redirects to from now on.
func (r *replicaRig) startOwner(h http.Handler) (*httptest.Server, *connCounts) {
	srv, conns := r.start(h)
	r.owner.Store(&srv.URL)
	return srv, conns
}

// run registers and runs a fleet of n clusters against the entry.
func (r *replicaRig) run(n int, period time.Duration) *Fleet {
	cfg := DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = r.entry.URL, r.root, "tok", n
	cfg.HeartbeatPeriod, cfg.CollectionInterval, cfg.RegisterConcurrency, cfg.Workers = period, 300*time.Millisecond, 2, 4
	f, err := New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(f.Close)
	if _, err := f.Register(r.t.Context()); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(r.t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	r.t.Cleanup(func() { cancel(); <-done })
	return f
}

// TestFleetFollowsRedirectsAndRetries: the owner refuses each cluster's
// first heartbeat with 503 and Retry-After: 1. Every heartbeat and write
// lands at the owner with its body, the refused heartbeat is repeated a
// second later rather than a period later, a cluster's first call alone
// goes through the entry replica, and each cluster keeps one connection, to
// its owner.
func TestFleetFollowsRedirectsAndRetries(t *testing.T) {
	t.Parallel()
	r := newReplicaRig(t)
	var (
		mu      sync.Mutex
		refused = map[string]time.Time{}
	)
	owner, ownerConns := r.startOwner(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == agentapi.PathHeartbeat && req.TLS != nil && len(req.TLS.VerifiedChains) > 0 {
			name := req.TLS.VerifiedChains[0][0].Subject.CommonName
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
		r.g.ServeHTTP(w, req)
	}))
	const clusters, period = 4, 6 * time.Second
	f := r.run(clusters, period)

	ownerHost := owner.Listener.Addr().String()
	testutil.Eventually(t, 3*period, func() error { return r.landed(f, 1, 3) })
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
	if n := ownerConns.made.Load(); n > clusters {
		t.Errorf("the owner saw %d connections from %d clusters, want one each", n, clusters)
	}
	if n := r.redirected.Load(); n > clusters {
		t.Errorf("the entry replica redirected %d calls of %d clusters, want one each: later calls go to the owner", n, clusters)
	}
	// Registration's shared connections stay; the clusters' own close.
	testutil.Eventually(t, 5*time.Second, func() error {
		if n := r.entryConns.open.Load(); n > 2 {
			return fmt.Errorf("the entry replica holds %d connections, want at most registration's 2", n)
		}
		return nil
	})
	r.g.mu.Lock()
	defer r.g.mu.Unlock()
	if r.g.badWrite != "" {
		t.Errorf("a redirected write arrived changed: %s", r.g.badWrite)
	}
}

// TestFleetFindsANewOwnerWhenItsOwnerDies: clusters that call their owner
// directly go back to the entry replica once the owner stops answering,
// and land at the owner it names then.
func TestFleetFindsANewOwnerWhenItsOwnerDies(t *testing.T) {
	t.Parallel()
	r := newReplicaRig(t)
	first, _ := r.startOwner(r.g)
	const clusters = 3
	f := r.run(clusters, 2*time.Second)
	testutil.Eventually(t, 10*time.Second, func() error { return r.landedAt(f, first) })

	first.CloseClientConnections()
	first.Close()
	second, _ := r.startOwner(r.g)
	testutil.Eventually(t, 20*time.Second, func() error { return r.landedAt(f, second) })
}

// landed is nil once every cluster's heartbeats and writes reached the
// gateway at least beats and writes times.
func (r *replicaRig) landed(f *Fleet, beats, writes int) error {
	for _, name := range f.Names() {
		b, w := r.g.counts(name)
		if b < beats || w < writes {
			return fmt.Errorf("%s: %d heartbeats and %d writes at the owner, waiting for %d and %d", name, b, w, beats, writes)
		}
	}
	return nil
}

// landedAt is nil once every cluster's last heartbeat and write were
// acknowledged by owner.
func (r *replicaRig) landedAt(f *Fleet, owner *httptest.Server) error {
	host := owner.Listener.Addr().String()
	for name, l := range f.Landings() {
		if l.HeartbeatHost != host || l.WriteHost != host {
			return fmt.Errorf("%s: last heartbeat at %s, last write at %s, waiting for %s", name, l.HeartbeatHost, l.WriteHost, host)
		}
	}
	return nil
}
