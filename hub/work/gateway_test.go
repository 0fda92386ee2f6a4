package work

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
)

// testGateway serves the endpoints over a fake client, on the agents'
// gateway over mutual TLS, where a client certificate names the calling
// cluster.
func testGateway(t *testing.T, objs ...client.Object) (*Gateway, client.Client, *atomic.Int32, *gatewaytest.Server) {
	t.Helper()
	s := runtime.NewScheme()
	_ = fleetv1.AddToScheme(s)
	writes := &atomic.Int32{}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).WithStatusSubresource(&fleetv1.ManifestWork{}).
		WithInterceptorFuncs(interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			writes.Add(1)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		}}).Build()
	g := newGateway(c, c, c, slog.New(slog.DiscardHandler), nil)
	agents := gateway.New(gateway.Options{})
	g.Routes(agents)
	return g, c, writes, gatewaytest.Start(t, agents)
}

func mwork(ns, name string, finalizer bool) *fleetv1.ManifestWork {
	mw := &fleetv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + ns + "-" + name), Generation: 1}}
	if finalizer {
		mw.Finalizers = []string{Finalizer}
	}
	return mw
}

// call sends a request as cluster (without a client certificate for "").
func call(t *testing.T, srv *gatewaytest.Server, cluster, method, path string, in any) (*http.Response, []byte) {
	t.Helper()
	var body []byte
	if in != nil {
		body, _ = json.Marshal(in)
	}
	req, _ := http.NewRequest(method, srv.URL+path, bytes.NewReader(body))
	resp, err := srv.Client(cluster).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

func TestListServesOwnFinalizedWorks(t *testing.T) {
	_, _, _, srv := testGateway(t, mwork("east", "b", true), mwork("east", "a", true), mwork("east", "new", false), mwork("west", "w", true))
	resp, body := call(t, srv, "east", http.MethodGet, agentapi.PathWorks, nil)
	var l agentapi.WorkList
	if err := json.Unmarshal(body, &l); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("list: %d %s %v", resp.StatusCode, body, err)
	}
	if len(l.Items) != 2 || l.Items[0].Name != "a" || l.Items[1].Name != "b" || l.Items[0].UID != "uid-east-a" {
		t.Errorf("east lists %+v, want a and b (not the work without the finalizer, nor west's)", l.Items)
	}
	if resp.Header.Get("ETag") != `"`+l.ResourceVersion+`"` {
		t.Errorf("ETag %q, want the list's version %q", resp.Header.Get("ETag"), l.ResourceVersion)
	}
	for _, path := range []string{agentapi.PathWorks + "?namespace=west", agentapi.WorkStatusPath("w") + "?namespace=west"} {
		method := http.MethodGet
		if strings.Contains(path, "status") {
			method = http.MethodPut
		}
		if resp, _ := call(t, srv, "east", method, path, agentapi.WorkStatusRequest{}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s as east: %d, want 403", method, path, resp.StatusCode)
		}
	}
	if resp, _ := call(t, srv, "", http.MethodGet, agentapi.PathWorks, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("list without a client certificate: %d, want the gateway's refusal", resp.StatusCode)
	}
	if resp, _ := call(t, srv, "east", http.MethodGet, agentapi.PathWorks+"?timeout=soon", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad timeout: %d, want 400", resp.StatusCode)
	}
}

func TestListLongPoll(t *testing.T) {
	g, c, _, srv := testGateway(t, mwork("east", "a", true))
	_, body := call(t, srv, "east", http.MethodGet, agentapi.PathWorks, nil)
	var l agentapi.WorkList
	_ = json.Unmarshal(body, &l)

	// Unchanged: 304 at the timeout.
	start := time.Now()
	resp, _ := call(t, srv, "east", http.MethodGet, agentapi.PathWorks+"?timeout=200ms&resourceVersion="+l.ResourceVersion, nil)
	if resp.StatusCode != http.StatusNotModified || time.Since(start) < 200*time.Millisecond {
		t.Errorf("unchanged poll: %d after %s, want 304 after the timeout", resp.StatusCode, time.Since(start))
	}
	// A stale version answers at once.
	if resp, _ := call(t, srv, "east", http.MethodGet, agentapi.PathWorks+"?timeout=1m&resourceVersion=old", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("stale poll: %d, want 200 at once", resp.StatusCode)
	}
	// A status-only change does not change the version.
	mw := &fleetv1.ManifestWork{}
	_ = c.Get(context.Background(), client.ObjectKey{Namespace: "east", Name: "a"}, mw)
	mw.Status.ObservedGeneration = 1
	_ = c.Status().Update(context.Background(), mw)
	l2, _ := g.list(context.Background(), "east")
	if l2.ResourceVersion != l.ResourceVersion {
		t.Error("a status write changed the list version")
	}
	// A waiting poll answers when a work is added and the handler wakes it.
	done := make(chan *http.Response, 1)
	go func() {
		resp, _ := call(t, srv, "east", http.MethodGet, agentapi.PathWorks+"?timeout=1m&resourceVersion="+l.ResourceVersion, nil)
		done <- resp
	}()
	deadline := time.Now().Add(10 * time.Second)
	for testutil.ToFloat64(g.poll.Waiting) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the poll never waited")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := c.Create(context.Background(), mwork("east", "b", true)); err != nil {
		t.Fatal(err)
	}
	g.poll.Wake.Notify("west") // another namespace: no answer yet
	select {
	case <-done:
		t.Fatal("a change in west answered east's poll")
	case <-time.After(50 * time.Millisecond):
	}
	g.poll.Wake.Notify("east")
	select {
	case resp := <-done:
		if resp.StatusCode != http.StatusOK {
			t.Errorf("woken poll: %d, want 200", resp.StatusCode)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not answer when woken")
	}
}

func TestStatusWrittenOnlyWhenChanged(t *testing.T) {
	_, c, writes, srv := testGateway(t, mwork("east", "a", true))
	st := fleetv1.ManifestWorkStatus{ObservedGeneration: 1, Conditions: []metav1.Condition{{Type: "Applied", Status: "True", Reason: "Applied",
		LastTransitionTime: metav1.NewTime(time.Now())}}}
	for i := range 2 {
		if resp, body := call(t, srv, "east", http.MethodPut, agentapi.WorkStatusPath("a"), agentapi.WorkStatusRequest{UID: "uid-east-a", Status: st}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("report %d: %d %s", i, resp.StatusCode, body)
		}
	}
	if writes.Load() != 1 {
		t.Errorf("%d status writes for two equal reports, want 1", writes.Load())
	}
	mw := &fleetv1.ManifestWork{}
	_ = c.Get(context.Background(), client.ObjectKey{Namespace: "east", Name: "a"}, mw)
	if mw.Status.ObservedGeneration != 1 || len(mw.Status.Conditions) != 1 {
		t.Errorf("status %+v", mw.Status)
	}
	if resp, _ := call(t, srv, "east", http.MethodPut, agentapi.WorkStatusPath("a"), agentapi.WorkStatusRequest{UID: "other", Status: st}); resp.StatusCode != http.StatusConflict {
		t.Errorf("report for another uid: %d, want 409", resp.StatusCode)
	}
	if resp, _ := call(t, srv, "west", http.MethodPut, agentapi.WorkStatusPath("a"), agentapi.WorkStatusRequest{Status: st}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("west reports on a work it does not have: %d, want 404", resp.StatusCode)
	}
}

func TestFinalizerReleasedOnlyWhenDeleting(t *testing.T) {
	_, c, _, srv := testGateway(t, mwork("east", "a", true))
	if resp, _ := call(t, srv, "east", http.MethodDelete, agentapi.WorkFinalizerPath("a"), nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("release of a live work: %d, want 409", resp.StatusCode)
	}
	if err := c.Delete(context.Background(), mwork("east", "a", true)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := call(t, srv, "east", http.MethodDelete, agentapi.WorkFinalizerPath("a")+"?uid=other", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("release for another uid: %d, want 409", resp.StatusCode)
	}
	if resp, _ := call(t, srv, "west", http.MethodDelete, agentapi.WorkFinalizerPath("a"), nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("west releasing a work it does not have: %d, want 204 (nothing to do)", resp.StatusCode)
	}
	mw := &fleetv1.ManifestWork{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "east", Name: "a"}, mw); err != nil || !controllerutil.ContainsFinalizer(mw, Finalizer) {
		t.Fatalf("east's work after west's call: %v %v", mw.Finalizers, err)
	}
	if resp, body := call(t, srv, "east", http.MethodDelete, agentapi.WorkFinalizerPath("a")+"?uid=uid-east-a", nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("release: %d %s", resp.StatusCode, body)
	}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: "east", Name: "a"}, mw); err == nil {
		t.Errorf("the work is still there after its release: %v", mw.Finalizers)
	}
}

func TestListVersion(t *testing.T) {
	a := []agentapi.WorkItem{{Name: "a", UID: "1", Generation: 1}}
	for name, b := range map[string][]agentapi.WorkItem{
		"generation": {{Name: "a", UID: "1", Generation: 2}},
		"uid":        {{Name: "a", UID: "2", Generation: 1}},
		"deleting":   {{Name: "a", UID: "1", Generation: 1, Deleting: true}},
		"added":      {{Name: "a", UID: "1", Generation: 1}, {Name: "b", UID: "3", Generation: 1}},
		"removed":    {},
	} {
		if listVersion(a) == listVersion(b) {
			t.Errorf("%s: the version did not change", name)
		}
	}
	same := []agentapi.WorkItem{{Name: "a", UID: "1", Generation: 1, Status: &fleetv1.ManifestWorkStatus{ObservedGeneration: 1}}}
	if listVersion(a) != listVersion(same) {
		t.Error("the status changed the version")
	}
}
