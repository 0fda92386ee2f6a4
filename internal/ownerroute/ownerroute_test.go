package ownerroute

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// replicas is an entry replica that redirects every call to the current
// owner, counting what it redirected, and owners that echo the body.
type replicas struct {
	entry      *httptest.Server
	redirected atomic.Int64
	owner      atomic.Pointer[string]
}

func newReplicas(t *testing.T) *replicas {
	r := &replicas{}
	r.entry = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.redirected.Add(1)
		http.Redirect(w, req, *r.owner.Load()+req.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(r.entry.Close)
	return r
}

// startOwner starts an owner that answers with the path and body it got,
// and makes the entry redirect to it.
func (r *replicas) startOwner(t *testing.T) *httptest.Server {
	o := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		_, _ = io.WriteString(w, req.URL.Path+" "+string(body))
	}))
	o.TLS = r.entry.TLS.Clone() // the same certificate the client trusts
	o.StartTLS()
	t.Cleanup(o.Close)
	r.owner.Store(&o.URL)
	return o
}

func (r *replicas) client() *http.Client { return Client(r.entry.Client()) }

func post(t *testing.T, c *http.Client, url, body string) (string, error) {
	t.Helper()
	resp, err := c.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), nil
}

func TestCallsGoToTheOwnerOnceRedirected(t *testing.T) {
	t.Parallel()
	r := newReplicas(t)
	owner := r.startOwner(t)
	c := r.client()
	for i, body := range []string{"one", "two", "three"} {
		got, err := post(t, c, r.entry.URL+"/api/v1/write", body)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if want := "/api/v1/write " + body; got != want {
			t.Errorf("call %d: the owner got %q, want %q", i, got, want)
		}
	}
	if n := r.redirected.Load(); n != 1 {
		t.Errorf("the entry redirected %d calls, want only the first", n)
	}
	if got := c.Transport.(*Transport).Owner(); got != owner.URL {
		t.Errorf("Owner() = %q, want %q", got, owner.URL)
	}
}

func TestADeadOwnerSendsTheNextCallToTheEntry(t *testing.T) {
	t.Parallel()
	r := newReplicas(t)
	first := r.startOwner(t)
	c := r.client()
	if _, err := post(t, c, r.entry.URL+"/hb", "a"); err != nil {
		t.Fatal(err)
	}
	first.CloseClientConnections()
	first.Close()
	second := r.startOwner(t)
	// The call that finds the owner dead fails, as any call to a dead
	// hub does: the agent's retry is the next call.
	if _, err := post(t, c, r.entry.URL+"/hb", "b"); err == nil {
		t.Fatal("a call to the dead owner succeeded")
	}
	got, err := post(t, c, r.entry.URL+"/hb", "c")
	if err != nil {
		t.Fatal(err)
	}
	if got != "/hb c" {
		t.Errorf("the new owner got %q, want %q", got, "/hb c")
	}
	if got := c.Transport.(*Transport).Owner(); got != second.URL {
		t.Errorf("Owner() = %q, want the new owner %q", got, second.URL)
	}
	if n := r.redirected.Load(); n != 2 {
		t.Errorf("the entry redirected %d calls, want 2 (one per owner)", n)
	}
}

func TestRedirectsItDoesNotFollow(t *testing.T) {
	t.Parallel()
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t.Error("a redirect to plain http was followed")
	}))
	defer plain.Close()
	entry := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		http.Redirect(w, req, plain.URL+req.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	defer entry.Close()
	c := Client(entry.Client())
	resp, err := c.Post(entry.URL+"/x", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("a redirect to http answered %d, want the 307 itself", resp.StatusCode)
	}
	// A body that cannot be read twice is not sent again.
	r := newReplicas(t)
	r.startOwner(t)
	c = r.client()
	req, _ := http.NewRequest(http.MethodPost, r.entry.URL+"/x", io.MultiReader(bytes.NewReader([]byte("once"))))
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Errorf("a body without GetBody was redirected: %d, want the 307 itself", resp.StatusCode)
	}
}
