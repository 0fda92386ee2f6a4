// Package ownerroute remembers where hub replicas send an agent: a replica
// that does not own the agent's cluster answers 307 with its owner's
// address, and the agent's later calls go to that owner directly instead of
// through the replicas' shared address and another redirect each time.
package ownerroute

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
)

// maxRedirects bounds the 307s one call follows, as Go's client bounds
// redirects (at 10).
const maxRedirects = 5

// Transport follows a 307 to the cluster's owner itself, with the same
// method and body, and sends later requests to the owner it learnt until
// one fails to reach it (a dead owner), when the configured address is
// asked again. Only an https owner is followed, so that the owner is
// verified as the hub was. A client using it should not follow redirects
// itself (CheckRedirect returning http.ErrUseLastResponse; Client does
// that).
type Transport struct {
	next  http.RoundTripper
	owner atomic.Pointer[url.URL] // scheme and host only
}

// New wraps next.
func New(next http.RoundTripper) *Transport {
	if next == nil {
		next = http.DefaultTransport
	}
	return &Transport{next: next}
}

// Client makes c send through a Transport wrapping its transport, and stop
// following redirects itself; it returns c.
func Client(c *http.Client) *http.Client {
	c.Transport = New(c.Transport)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// Owner is the owner's base URL (scheme://host) calls go to, or "".
func (t *Transport) Owner() string {
	if o := t.owner.Load(); o != nil {
		return o.String()
	}
	return ""
}

// CloseIdleConnections closes the wrapped transport's idle connections.
func (t *Transport) CloseIdleConnections() {
	if c, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// RoundTrip sends req to the remembered owner, or where it is addressed.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	out, used := req, t.owner.Load()
	if used != nil {
		out = retarget(req, used)
	}
	for hops := 0; ; hops++ {
		resp, err := t.next.RoundTrip(out)
		if err != nil {
			if used != nil {
				// The owner is gone or unreachable: the next call asks
				// the configured address, whose replicas know the new one.
				t.owner.CompareAndSwap(used, nil)
			}
			return nil, err
		}
		if resp.StatusCode != http.StatusTemporaryRedirect || hops >= maxRedirects {
			return resp, nil
		}
		loc, err := resp.Location()
		if err != nil || loc.Scheme != "https" || loc.Host == "" {
			return resp, nil // not a replica's redirect: the caller sees the 307
		}
		if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
			return resp, nil // the body cannot be sent again
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		used = &url.URL{Scheme: loc.Scheme, Host: loc.Host}
		t.owner.Store(used)
		if out, err = redirected(req, loc); err != nil {
			return nil, err
		}
	}
}

// retarget is req sent to owner's scheme and host, its body replayed.
func retarget(req *http.Request, owner *url.URL) *http.Request {
	u := *req.URL
	u.Scheme, u.Host = owner.Scheme, owner.Host
	out := req.Clone(req.Context())
	out.URL, out.Host = &u, ""
	return out
}

// redirected is req sent to loc, with a fresh copy of its body.
func redirected(req *http.Request, loc *url.URL) (*http.Request, error) {
	out := req.Clone(req.Context())
	out.URL, out.Host = loc, ""
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("replay the request's body to %s: %w", loc.Host, err)
		}
		out.Body = body
	}
	return out, nil
}
