package work

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
)

// answerWithin bounds the time to answer one call: short enough that a
// stuck input is reported within a CI run's 10 s, and longer than a long
// poll lasts here (its request ends after 2 s).
const answerWithin = 5 * time.Second

// FuzzWorkGateway sends what the fuzzer makes to the agents' work
// endpoints, through the agents' gateway, as cluster "east", over a fake client holding a work, a work
// being deleted and another cluster's work: a status report (the body, for
// the named work), a list (the query) and a finalizer call (name and
// query). Every call must answer within its deadline, never panic nor
// answer 5xx, and say what was wrong when it refuses.
func FuzzWorkGateway(f *testing.F) {
	report, err := json.Marshal(agentapi.WorkStatusRequest{UID: "uid-east-a", Status: fleetv1.ManifestWorkStatus{
		ObservedGeneration: 1,
		Conditions:         []metav1.Condition{{Type: "Applied", Status: metav1.ConditionTrue, Reason: "Applied", Message: "1 of 1", LastTransitionTime: metav1.Unix(1_800_000_000, 0)}},
		Manifests: []fleetv1.ManifestCondition{{
			ResourceMeta: fleetv1.ManifestResourceMeta{Ordinal: 0, Version: "v1", Kind: "ConfigMap", Resource: "configmaps", Name: "c", Namespace: "apps"},
			Conditions:   []metav1.Condition{{Type: "Available", Status: metav1.ConditionTrue, Reason: "Exists", LastTransitionTime: metav1.Unix(1_800_000_000, 0)}},
		}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range []struct {
		name, query string
		body        []byte
	}{
		{"a", "", report},
		{"a", "uid=uid-east-a&timeout=0s", report},
		{"deleting", "uid=uid-east-deleting", []byte(`{"uid":"uid-east-deleting","status":{"observedGeneration":1}}`)},
		{"deleting", "uid=other&namespace=east", []byte(`{"uid":"other"}`)},
		{"w", "namespace=west", []byte(`{}`)},
		{"missing", "timeout=-1s", []byte(`{"status":{"conditions":[{"type":"Applied","lastTransitionTime":"not a time"}]}}`)},
		{"a", "timeout=1h&resourceVersion=x", []byte(`{"status":{"observedGeneration":"one"}}`)},
		{"a/b", "%zz", []byte(`[`)},
		{"", "", nil},
	} {
		f.Add(seed.name, seed.query, seed.body)
	}
	// The gateway proves the caller from the connection's verified chain.
	east := &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: "east"}}}}}
	scheme := runtime.NewScheme()
	_ = fleetv1.AddToScheme(scheme)
	f.Fuzz(func(t *testing.T, name, query string, body []byte) {
		// A fresh hub per input, so that no input depends on the ones
		// before it (a removed finalizer, a written status).
		deleting := mwork("east", "deleting", true)
		deleting.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&fleetv1.ManifestWork{}).
			WithObjects(mwork("east", "a", true), deleting, mwork("west", "w", true)).Build()
		g := newGateway(c, c, c, slog.New(slog.DiscardHandler), nil)
		mux := gateway.New(gateway.Options{})
		g.Routes(mux)
		path := agentapi.PathWorks + "/" + url.PathEscape(name)
		for _, call := range []struct {
			method, target string
			body           []byte
		}{
			{http.MethodPut, path + "/status", body},
			{http.MethodGet, agentapi.PathWorks + "?" + query, nil},
			{http.MethodDelete, path + "/finalizer?" + query, nil},
		} {
			// A long poll ends with the request: a client that goes away
			// must not hold the handler.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			r, err := http.NewRequestWithContext(ctx, call.method, call.target, bytes.NewReader(call.body))
			if err != nil {
				cancel()
				continue // not a request a client can send
			}
			r.TLS = east // as the agents' port verified it
			w := httptest.NewRecorder()
			done := make(chan any, 1)
			go func() {
				defer func() { done <- recover() }()
				mux.ServeHTTP(w, r)
			}()
			select {
			case p := <-done:
				if p != nil {
					t.Fatalf("%s %s %q: panic: %v", call.method, call.target, call.body, p)
				}
			case <-time.After(answerWithin):
				t.Fatalf("%s %s %q: no answer within %s", call.method, call.target, call.body, answerWithin)
			}
			cancel()
			answer := strings.TrimSpace(w.Body.String())
			switch {
			case w.Code >= 500:
				t.Fatalf("%s %s %q: %d %q, want a 4xx for bad input", call.method, call.target, call.body, w.Code, answer)
			case w.Code >= 400 && answer == "":
				t.Fatalf("%s %s %q: %d without a message", call.method, call.target, call.body, w.Code)
			}
		}
	})
}
