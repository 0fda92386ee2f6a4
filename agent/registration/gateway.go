package registration

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/internal/ownerroute"
)

const (
	requestTimeout = 30 * time.Second
	maxErrorBody   = 2 << 10
	maxBody        = 1 << 20
)

// StatusError is the hub's refusal of a call: a status other than 2xx, with
// the hub's plain-text message.
type StatusError struct {
	// Op is the call: "fetch CA", "register", "heartbeat" or "renew".
	Op   string
	Code int
	// Message is the hub's text, trimmed, the bootstrap token redacted.
	Message string
	// RetryAfter is the Retry-After header, when given in seconds.
	RetryAfter time.Duration
	// Deregistered is the agentapi.HeaderDeregister header.
	Deregistered bool
}

func (e *StatusError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "(no message)"
	}
	return fmt.Sprintf("%s: the hub answered %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), msg)
}

// temporary reports whether the call may succeed later as it is.
func (e *StatusError) temporary() bool {
	return e.Code == http.StatusServiceUnavailable || e.Code == http.StatusTooManyRequests || e.Code >= 500
}

// retryable reports whether err, from a gateway call, is worth retrying:
// transport errors and temporary refusals, not the context's end.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.temporary()
	}
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF)
}

// gateway calls the hub's agent endpoints.
type gateway struct {
	base   string
	client *http.Client
	// secret is redacted from every message the hub sends back.
	secret string
}

func newHTTPClient(roots *x509.CertPool, cert *tls.Certificate, insecure bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} // insecure: only the CA fetch, whose answer is checked against the pin
	if cert == nil {
		return &http.Client{Transport: tr, Timeout: requestTimeout}
	}
	c := *cert
	tr.TLSClientConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	// Authenticated calls go to the cluster's owner among hub replicas once
	// one has redirected them there.
	return ownerroute.Client(&http.Client{Transport: tr, Timeout: requestTimeout})
}

// close drops the client's idle connections, so that the next call to the
// hub handshakes with whatever client it is given next.
func (g *gateway) close() {
	if g != nil {
		g.client.CloseIdleConnections()
	}
}

// fetchCA GETs the hub's CA bundle without verifying the hub (nothing to
// verify it with yet) and returns it with the certificates the server
// presented, to be checked once the bundle is.
func (g *gateway) fetchCA(ctx context.Context) ([]byte, []*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+agentapi.PathCA, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch CA: %w", err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetch CA: %w", err)
	}
	defer resp.Body.Close()
	if err := g.statusError("fetch CA", resp); err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, nil, fmt.Errorf("fetch CA: %w", err)
	}
	if resp.TLS == nil {
		return nil, nil, errors.New("fetch CA: the hub did not answer over TLS")
	}
	return body, resp.TLS.PeerCertificates, nil
}

// post sends in as JSON and decodes a 2xx answer into out.
func (g *gateway) post(ctx context.Context, op, path, bearer string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.base+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	if err := g.statusError(op, resp); err != nil {
		return err
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxBody)).Decode(out); err != nil {
		return fmt.Errorf("%s: decode the hub's answer: %w", op, err)
	}
	return nil
}

func (g *gateway) statusError(op string, resp *http.Response) error {
	if resp.StatusCode/100 == 2 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	msg := strings.TrimSpace(string(b))
	if g.secret != "" {
		msg = strings.ReplaceAll(msg, g.secret, "<redacted>")
	}
	se := &StatusError{Op: op, Code: resp.StatusCode, Message: msg, Deregistered: resp.Header.Get(agentapi.HeaderDeregister) != ""}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		se.RetryAfter = time.Duration(s) * time.Second
	}
	return se
}

// verifyServer checks that the certificates a server presented chain to
// roots and name the hub's host, as the TLS handshake would have.
func verifyServer(hubURL string, peer []*x509.Certificate, roots []*x509.Certificate) error {
	if len(peer) == 0 {
		return errors.New("the hub presented no certificate")
	}
	u, err := url.Parse(hubURL)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	for _, c := range roots {
		pool.AddCert(c)
	}
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	_, err = peer[0].Verify(x509.VerifyOptions{DNSName: u.Hostname(), Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("the hub's serving certificate does not verify against the pinned CA: %w", err)
	}
	return nil
}
