package fleetsim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fakePolicies serves one policy replica to every cluster as the hub's
// policy gateway does: a long poll answered at once when the caller's
// version is old, else 304 after the wait; status reports kept by cluster.
type fakePolicies struct {
	*fakeGateway

	mu         sync.Mutex
	generation int64
	changed    chan struct{}
	reports    map[string][]fleetv1.PolicyStatus
}

func (g *fakePolicies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, agentapi.PathPolicies) {
		g.fakeGateway.ServeHTTP(w, r)
		return
	}
	name, ok := g.identify(w, r)
	if !ok {
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == agentapi.PathPolicies:
		wait, err := time.ParseDuration(r.URL.Query().Get(agentapi.ParamTimeout))
		if err != nil {
			http.Error(w, "bad timeout", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		gen, changed := g.generation, g.changed
		g.mu.Unlock()
		if r.URL.Query().Get(agentapi.ParamResourceVersion) == fmt.Sprint(gen) {
			select {
			case <-changed:
			case <-time.After(wait):
				w.WriteHeader(http.StatusNotModified)
				return
			}
			g.mu.Lock()
			gen = g.generation
			g.mu.Unlock()
		}
		_ = json.NewEncoder(w).Encode(agentapi.PolicyList{ResourceVersion: fmt.Sprint(gen), Items: []agentapi.PolicyItem{{
			Name: "sec.baseline", UID: "uid-" + name, Generation: gen, RootNamespace: "sec", RootName: "baseline",
			Spec: fleetv1.PolicySpec{ObjectTemplates: make([]fleetv1.ObjectTemplate, 2)},
		}}})
	case r.Method == http.MethodPut && r.URL.Path == agentapi.PolicyStatusPath("sec.baseline"):
		var req agentapi.PolicyStatusRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.UID != "uid-"+name {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		g.mu.Lock()
		g.reports[name] = append(g.reports[name], req.Status)
		g.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

// bump moves the replica to its next generation.
func (g *fakePolicies) bump() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.generation++
	close(g.changed)
	g.changed = make(chan struct{})
}

// TestFleetPolicyAgents: every simulated cluster lists its replica,
// reports each generation once, with the verdict it is given, and hears of
// a new generation through its waiting poll.
func TestFleetPolicyAgents(t *testing.T) {
	tca := testbed.NewCA(t, "sim-policy-agents")
	ca, err := registration.LoadCA(tca.CertFile, tca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	g := &fakePolicies{fakeGateway: &fakeGateway{t: t, ca: ca, registers: map[string]int{}, heartbeats: map[string]int{}, writes: map[string]int{}},
		generation: 1, changed: make(chan struct{}), reports: map[string][]fleetv1.PolicyStatus{}}
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
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = srv.URL, roots, "tok", 4
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
	go func() {
		defer close(done)
		f.RunPolicies(ctx, 200*time.Millisecond, func(cluster string, _ agentapi.PolicyItem) fleetv1.ComplianceState {
			if cluster == "sim-0" {
				return fleetv1.NonCompliant
			}
			return fleetv1.Compliant
		})
	}()
	defer func() { cancel(); <-done }()

	// waitReports waits until every cluster has reported n statuses.
	waitReports := func(n int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g.mu.Lock()
			all := len(g.reports) == 4
			for _, r := range g.reports {
				all = all && len(r) >= n
			}
			g.mu.Unlock()
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("not every cluster reported %d statuses: %d clusters reported", n, len(g.reports))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitReports(1)
	// Polls that time out (200 ms) report nothing new.
	time.Sleep(500 * time.Millisecond)
	g.bump()
	waitReports(2)
	time.Sleep(500 * time.Millisecond)

	g.mu.Lock()
	defer g.mu.Unlock()
	for name, rs := range g.reports {
		want := fleetv1.Compliant
		if name == "sim-0" {
			want = fleetv1.NonCompliant
		}
		if len(rs) != 2 || rs[0].ObservedGeneration != 1 || rs[1].ObservedGeneration != 2 {
			t.Errorf("%s reported %d statuses: %+v, want generations 1 and 2", name, len(rs), rs)
			continue
		}
		if st := rs[1]; st.Compliant != want || len(st.Templates) != 2 || len(st.History) != 1 || st.History[0].Compliant != want {
			t.Errorf("%s: status %+v, want %s on 2 templates with one history entry", name, st, want)
		}
	}
	if st := f.PolicyStats(); st.Reports != 8 || st.Errors != 0 || st.Polls < 8 {
		t.Errorf("policy stats %+v, want 8 reports, no errors", st)
	}
}
