// Package hubclient is the agent's mutual-TLS client of the hub's agent
// endpoints (works, policies): one client, with the credentials
// registration keeps in the state folder, read again after a renewal.
package hubclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/internal/ownerroute"
)

const (
	maxErrorBody = 2 << 10
	// CallTimeout bounds a call that is not a long poll; a long poll gets
	// its timeout plus this.
	CallTimeout = 30 * time.Second
)

// Error is the hub's refusal of a call.
type Error struct {
	Op         string
	Code       int
	Message    string
	RetryAfter time.Duration
	// Deregistered: the hub no longer knows this cluster; registration
	// stops the agent, callers only back off.
	Deregistered bool
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: the hub answered %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), e.Message)
}

// Code is the status of an *Error in err's chain, or 0.
func Code(err error) int {
	var he *Error
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

// Client calls the hub over mutual TLS with the credentials in paths
// (agent/registration's Paths: tls.key, tls.crt, ca.crt). They are read
// again when the files change (a renewal), and connections made with the
// previous certificate are then dropped.
type Client struct {
	base  string
	paths registration.Paths

	mu      sync.Mutex
	client  *http.Client
	certPEM []byte
	caPEM   []byte
}

// New returns a client of the hub at base (https://host:port).
func New(base string, paths registration.Paths) *Client {
	return &Client{base: strings.TrimSuffix(base, "/"), paths: paths}
}

// http returns a client holding the current credentials.
func (h *Client) http() (*http.Client, error) {
	certPEM, err := os.ReadFile(h.paths.Cert)
	if err != nil {
		return nil, fmt.Errorf("read the agent's certificate: %w", err)
	}
	caPEM, err := os.ReadFile(h.paths.CA)
	if err != nil {
		return nil, fmt.Errorf("read the hub's CA bundle: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil && bytes.Equal(certPEM, h.certPEM) && bytes.Equal(caPEM, h.caPEM) {
		return h.client, nil
	}
	keyPEM, err := os.ReadFile(h.paths.Key)
	if err != nil {
		return nil, fmt.Errorf("read the agent's key: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("the agent's certificate and key: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("the hub's CA bundle holds no PEM certificate")
	}
	// As agent/registration builds its mutual-TLS client.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &pair, nil }}
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
	// Calls go to the cluster's owner among hub replicas once one has
	// redirected them there.
	h.client, h.certPEM, h.caPEM = ownerroute.Client(&http.Client{Transport: tr}), certPEM, caPEM
	return h.client, nil
}

// Close drops idle connections.
func (h *Client) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
}

// Do sends a request; an answer other than 2xx or 304 is an *Error. The
// caller closes the answer's body.
func (h *Client) Do(ctx context.Context, op, method, path string, body []byte) (*http.Response, error) {
	c, err := h.http()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if resp.StatusCode/100 == 2 || resp.StatusCode == http.StatusNotModified {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	he := &Error{Op: op, Code: resp.StatusCode, Message: strings.TrimSpace(string(b)),
		Deregistered: resp.Header.Get(agentapi.HeaderDeregister) != ""}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		he.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, he
}

// Call sends a request whose answer has no body worth reading.
func (h *Client) Call(ctx context.Context, op, method, path string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	resp, err := h.Do(ctx, op, method, path, body)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	return resp.Body.Close()
}
