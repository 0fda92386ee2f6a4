package remote

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fakeHub serves the policy endpoints as the hub does, over mutual TLS.
type fakeHub struct {
	mu       sync.Mutex
	version  int
	items    []agentapi.PolicyItem
	changed  chan struct{}
	statuses map[string]agentapi.PolicyStatusRequest
	released map[string]string
	url      string
}

func startFakeHub(t *testing.T, ca *testbed.CA) *fakeHub {
	h := &fakeHub{changed: make(chan struct{}), statuses: map[string]agentapi.PolicyStatusRequest{}, released: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathPolicies, func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusUnauthorized)
			return
		}
		timeout, _ := time.ParseDuration(r.URL.Query().Get(agentapi.ParamTimeout))
		h.mu.Lock()
		cur, ch := strconv.Itoa(h.version), h.changed
		h.mu.Unlock()
		if r.URL.Query().Get(agentapi.ParamResourceVersion) == cur {
			select {
			case <-ch:
			case <-time.After(timeout):
				w.WriteHeader(http.StatusNotModified)
				return
			case <-r.Context().Done():
				return
			}
		}
		h.mu.Lock()
		out := agentapi.PolicyList{ResourceVersion: strconv.Itoa(h.version), Items: h.items}
		h.mu.Unlock()
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("PUT "+agentapi.PathPolicies+"/{name}/status", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.PolicyStatusRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if r.PathValue("name") == "gone" {
			http.Error(w, "no such replica", http.StatusNotFound)
			return
		}
		h.mu.Lock()
		h.statuses[r.PathValue("name")] = req
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE "+agentapi.PathPolicies+"/{name}/finalizer", func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.released[r.PathValue("name")] = r.URL.Query().Get(agentapi.ParamUID)
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = ca.ServerTLS("hub")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *fakeHub) set(items ...agentapi.PolicyItem) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.items = items
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

// credentials writes a client certificate where registration keeps it.
func credentials(t *testing.T, ca *testbed.CA, cluster string) string {
	state := t.TempDir()
	p := registration.PathsIn(state)
	_ = os.MkdirAll(p.Dir, 0o700)
	certFile, keyFile := ca.Client(cluster)
	for src, dst := range map[string]string{certFile: p.Cert, keyFile: p.Key, ca.CertFile: p.CA} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return state
}

// waitPolicies waits for the next change of the set and returns it.
func waitPolicies(t *testing.T, h *Hub, changed <-chan struct{}) ([]*fleetv1.Policy, <-chan struct{}) {
	t.Helper()
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("the policy set did not change")
	}
	return h.Policies()
}

// The replicas the hub lists become the engine's policies, each change
// wakes the engine, a deleting replica carries a deletion timestamp, and
// statuses and releases reach the hub with the replica's UID.
func TestHubIsSourceAndSink(t *testing.T) {
	ca := testbed.NewCA(t, "policyremote")
	fake := startFakeHub(t, ca)
	h, err := New(Config{Hub: fake.url, StateDir: credentials(t, ca, "east"), ClusterName: "east",
		PollTimeout: 2 * time.Second, Logger: testutil.Logger(t, slog.LevelInfo)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	ps, changed := h.Policies()
	if len(ps) != 0 {
		t.Fatalf("before a list: %d policies", len(ps))
	}
	ps, changed = waitPolicies(t, h, changed) // the first list, empty
	if len(ps) != 0 {
		t.Fatalf("an empty list gave %d policies", len(ps))
	}
	item := agentapi.PolicyItem{Name: "prod.baseline", UID: "u1", Generation: 2, RootNamespace: "prod", RootName: "baseline",
		Spec:   fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationEnforce},
		Status: &fleetv1.PolicyStatus{Compliant: fleetv1.Compliant}}
	fake.set(item)
	ps, changed = waitPolicies(t, h, changed)
	if len(ps) != 1 {
		t.Fatalf("got %d policies, want 1", len(ps))
	}
	p := ps[0]
	if p.Namespace != "east" || p.Name != "prod.baseline" || p.UID != "u1" || p.Generation != 2 ||
		p.Labels[fleetv1.LabelRootPolicy] != "prod.baseline" || p.Spec.RemediationAction != fleetv1.RemediationEnforce ||
		p.Status.Compliant != fleetv1.Compliant || p.DeletionTimestamp != nil {
		t.Errorf("policy as the engine reads it: %+v", p)
	}

	item.Deleting = true
	fake.set(item)
	ps, _ = waitPolicies(t, h, changed)
	if len(ps) != 1 || ps[0].DeletionTimestamp == nil {
		t.Fatalf("a deleting replica has no deletion timestamp: %+v", ps)
	}

	ref := policy.Ref{Namespace: "east", Name: "prod.baseline", UID: "u1", Generation: 2}
	st := &fleetv1.PolicyStatus{Compliant: fleetv1.NonCompliant}
	if err := h.Report(ctx, ref, st); err != nil {
		t.Fatal(err)
	}
	if err := h.Pruned(ctx, ref); err != nil {
		t.Fatal(err)
	}
	fake.mu.Lock()
	got, released := fake.statuses["prod.baseline"], fake.released["prod.baseline"]
	fake.mu.Unlock()
	if got.UID != "u1" || got.Status.Compliant != fleetv1.NonCompliant {
		t.Errorf("the hub got status %+v", got)
	}
	if released != "u1" {
		t.Errorf("the hub released uid %q, want u1", released)
	}
	// A replica the hub no longer has: the next list drops it, no retry.
	if err := h.Report(ctx, policy.Ref{Name: "gone", UID: "u9"}, st); err != nil {
		t.Errorf("a report of a replica the hub no longer has: %v", err)
	}
}
