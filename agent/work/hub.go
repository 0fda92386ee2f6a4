package work

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
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

const (
	maxListBody  = 64 << 20
	maxErrorBody = 2 << 10
	callTimeout  = 30 * time.Second
)

// hubError is the hub's refusal of a call.
type hubError struct {
	Op           string
	Code         int
	Message      string
	RetryAfter   time.Duration
	Deregistered bool
}

func (e *hubError) Error() string {
	return fmt.Sprintf("%s: the hub answered %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), e.Message)
}

// hubClient calls the hub's work endpoints over mutual TLS with the
// credentials registration keeps in the state folder (agent/registration's
// Paths: tls.key, tls.crt, ca.crt). They are read again when the files
// change (a renewal), and connections made with the previous certificate
// are then dropped.
type hubClient struct {
	base  string
	paths registration.Paths

	mu      sync.Mutex
	client  *http.Client
	certPEM []byte
	caPEM   []byte
}

func newHubClient(base string, paths registration.Paths) *hubClient {
	return &hubClient{base: strings.TrimSuffix(base, "/"), paths: paths}
}

// http returns a client holding the current credentials.
func (h *hubClient) http() (*http.Client, error) {
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
	h.client, h.certPEM, h.caPEM = &http.Client{Transport: tr}, certPEM, caPEM
	return h.client, nil
}

// close drops idle connections.
func (h *hubClient) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.client != nil {
		h.client.CloseIdleConnections()
	}
}

// list polls the works. It returns nil, nil when nothing changed since rv
// within timeout.
func (h *hubClient) list(ctx context.Context, rv string, timeout time.Duration) (*agentapi.WorkList, error) {
	q := url.Values{agentapi.ParamTimeout: {timeout.String()}}
	if rv != "" {
		q.Set(agentapi.ParamResourceVersion, rv)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+callTimeout)
	defer cancel()
	resp, err := h.do(ctx, "list works", http.MethodGet, agentapi.PathWorks+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, nil
	}
	var out agentapi.WorkList
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&out); err != nil {
		return nil, fmt.Errorf("list works: decode the hub's answer: %w", err)
	}
	return &out, nil
}

// putStatus reports a work's status.
func (h *hubClient) putStatus(ctx context.Context, name string, req agentapi.WorkStatusRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("report status of work %s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	resp, err := h.do(ctx, "report status of work "+name, http.MethodPut, agentapi.WorkStatusPath(name), body)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// removeFinalizer tells the hub the work's objects are gone (or left).
func (h *hubClient) removeFinalizer(ctx context.Context, name, uid string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	path := agentapi.WorkFinalizerPath(name) + "?" + url.Values{agentapi.ParamUID: {uid}}.Encode()
	resp, err := h.do(ctx, "release work "+name, http.MethodDelete, path, nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// do sends a request; an answer other than 2xx or 304 is a *hubError.
func (h *hubClient) do(ctx context.Context, op, method, path string, body []byte) (*http.Response, error) {
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
	he := &hubError{Op: op, Code: resp.StatusCode, Message: strings.TrimSpace(string(b)),
		Deregistered: resp.Header.Get(agentapi.HeaderDeregister) != ""}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		he.RetryAfter = time.Duration(s) * time.Second
	}
	return nil, he
}

// hubCode is the status of a *hubError, or 0.
func hubCode(err error) int {
	var he *hubError
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}
