package fleetsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fakeGateway answers as the hub's gateway does: registrations signed by
// the hub's own CA code (the first request of every cluster is asked to
// retry, and cluster sim-1 waits for acceptance once), heartbeats and
// remote writes counted by the client certificate's name.
type fakeGateway struct {
	t  *testing.T
	ca *registration.CA

	mu         sync.Mutex
	registers  map[string]int
	heartbeats map[string]int
	writes     map[string]int
	badWrite   string
}

func (g *fakeGateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case agentapi.PathRegister:
		var req agentapi.RegisterRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "bad registration", http.StatusBadRequest)
			return
		}
		if !slices.ContainsFunc(req.Claims, func(c agentapi.Claim) bool { return c.Name == agentapi.ClaimClusterID && c.Value != "" }) {
			http.Error(w, "no cluster id", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.registers[req.ClusterName]++
		n := g.registers[req.ClusterName]
		g.mu.Unlock()
		switch {
		case n == 1:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy; retry", http.StatusServiceUnavailable)
			return
		case n == 2 && req.ClusterName == "sim-1":
			_ = json.NewEncoder(w).Encode(agentapi.RegisterResponse{ClusterName: req.ClusterName, RetryAfterSeconds: 1})
			return
		}
		cert, notAfter, err := g.ca.Sign(req.CSR, req.ClusterName, types.UID("uid-"+req.ClusterName), time.Hour, time.Now())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(agentapi.RegisterResponse{ClusterName: req.ClusterName, Accepted: true, Certificate: string(cert), NotAfter: notAfter})
	case agentapi.PathHeartbeat:
		name, ok := g.identify(w, r)
		if !ok {
			return
		}
		g.mu.Lock()
		g.heartbeats[name]++
		g.mu.Unlock()
		_ = json.NewEncoder(w).Encode(agentapi.HeartbeatResponse{})
	case "/api/v1/write":
		name, ok := g.identify(w, r)
		if !ok {
			return
		}
		raw, _ := io.ReadAll(r.Body)
		var req prompb.WriteRequest
		if dec, err := snappy.Decode(nil, raw); err != nil || proto.Unmarshal(dec, &req) != nil {
			http.Error(w, "bad write", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.writes[name]++
		for _, ts := range req.Timeseries {
			sorted := slices.IsSortedFunc(ts.Labels, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
			if !sorted || !slices.ContainsFunc(ts.Labels, func(l prompb.Label) bool { return l.Name == "k8s_cluster_name" && l.Value == name }) || len(ts.Samples) != 1 ||
				!strings.HasPrefix(ts.Labels[0].Value, "k8s_") || ts.Labels[0].Name != model.MetricNameLabel {
				g.badWrite = ts.String()
			}
		}
		if len(req.Timeseries) != SeriesPerCluster {
			g.badWrite = "series count"
		}
		g.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func (g *fakeGateway) identify(w http.ResponseWriter, r *http.Request) (string, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 {
		http.Error(w, "client certificate required", http.StatusUnauthorized)
		return "", false
	}
	return r.TLS.VerifiedChains[0][0].Subject.CommonName, true
}

func (g *fakeGateway) counts(name string) (beats, writes int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.heartbeats[name], g.writes[name]
}

// TestFleetRegistersHeartbeatsWritesAndLoses runs a small fleet against a
// fake gateway over mutual TLS.
func TestFleetRegistersHeartbeatsWritesAndLoses(t *testing.T) {
	tca := testbed.NewCA(t, "sim-agents")
	ca, err := registration.LoadCA(tca.CertFile, tca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakeGateway{t: t, ca: ca, registers: map[string]int{}, heartbeats: map[string]int{}, writes: map[string]int{}}
	srv := httptest.NewUnstartedServer(g)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	certFile, keyFile := tca.Server("hub")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
	srv.StartTLS()
	defer srv.Close()
	caPEM, err := os.ReadFile(tca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	cfg := DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = srv.URL, roots, "tok", 6
	cfg.HeartbeatPeriod, cfg.CollectionInterval, cfg.RegisterConcurrency, cfg.Workers = 50*time.Millisecond, 80*time.Millisecond, 3, 4
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := f.Register(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Each cluster was told to retry once; sim-1 also waited for acceptance.
	if res.Registered != 6 || res.Requests != 13 || res.Rate() <= 0 {
		t.Errorf("registration: %+v, want 6 clusters in 13 requests", res)
	}

	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); f.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitAll := func(beats, writes int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for _, name := range f.Names() {
			for {
				b, w := g.counts(name)
				if b >= beats && w >= writes {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: %d heartbeats and %d writes, want %d and %d", name, b, w, beats, writes)
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
	waitAll(2, 1)

	lost := f.Lose(2)
	if len(lost) != 2 {
		t.Fatalf("lost %d clusters, want 2", len(lost))
	}
	before := map[string]int{}
	for _, l := range lost {
		if l.LastHeartbeat.IsZero() || time.Since(l.LastHeartbeat) > time.Second {
			t.Errorf("lost %s: last heartbeat %s", l.Name, l.LastHeartbeat)
		}
		before[l.Name], _ = g.counts(l.Name)
	}
	// The others go on; the lost ones call no more.
	for _, name := range f.Names() {
		if _, ok := before[name]; !ok {
			b0, _ := g.counts(name)
			deadline := time.Now().Add(10 * time.Second)
			for b, _ := g.counts(name); b < b0+3; b, _ = g.counts(name) {
				if time.Now().After(deadline) {
					t.Fatalf("%s stopped heartbeating after others were lost", name)
				}
				time.Sleep(10 * time.Millisecond)
			}
			break
		}
	}
	for name, n := range before {
		if b, _ := g.counts(name); b != n {
			t.Errorf("lost cluster %s heartbeated %d times after it was lost", name, b-n)
		}
	}
	st := f.Stats()
	if st.HeartbeatErrors != 0 || st.WriteErrors != 0 || st.Registered != 6 || st.Samples == 0 || st.HeartbeatLatency.N == 0 {
		t.Errorf("stats: %+v", st)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.badWrite != "" {
		t.Errorf("a written series is not as the agent sends it: %s", g.badWrite)
	}
}
