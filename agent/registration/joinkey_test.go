package registration

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// TestJoinKeepsItsKey: the hub binds a registered cluster to the key it
// registered with, so the agent asks with one key while it waits, across
// a restart, and when it joins again on its stored credentials; it logs
// the key's hash while waiting, for the administrator to compare.
func TestJoinKeepsItsKey(t *testing.T) {
	h := newFakeHub(t)
	h.set(func(h *fakeHub) { h.pending = 1 << 30 })
	dir := t.TempDir()
	a, logs := newTestAgent(t, h, dir, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for h.count(registrations) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d registration requests in 10s, want polls while pending", h.count(registrations))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Start while pending, cancelled = %v", err)
	}
	first := csrKeyHash(t, h.registerRequests()[0].CSR)
	for i, req := range h.registerRequests() {
		if got := csrKeyHash(t, req.CSR); got != first {
			t.Fatalf("poll %d asked with key %s, the first with %s", i, got, first)
		}
	}
	if !strings.Contains(logs.String(), "waiting for the hub to accept cluster c1") || !strings.Contains(logs.String(), "key_sha256="+first) {
		t.Errorf("the wait is not logged with the key's hash %s:\n%s", first, logs)
	}
	if fi, err := os.Stat(a.Paths().joinKey()); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the key of the waiting join is not stored 0600: %v", err)
	}

	// Restarted, the agent asks with the same key and keeps it once issued.
	h.set(func(h *fakeHub) { h.pending = 0 })
	b, _ := newTestAgent(t, h, dir, nil)
	start(t, b)
	reqs := h.registerRequests()
	if got := csrKeyHash(t, reqs[len(reqs)-1].CSR); got != first {
		t.Fatalf("the restarted agent joined with key %s, want the waiting join's %s", got, first)
	}
	if got := storedKeyHash(t, b.Paths().Key); got != first {
		t.Errorf("stored key %s, want %s", got, first)
	}
	if _, err := os.Stat(b.Paths().joinKey()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the join's key is still stored apart once joined: %v", err)
	}

	// Credentials the hub refuses: the agent joins again with their key.
	h.forget()
	c, _ := newTestAgent(t, h, dir, nil)
	start(t, c)
	reqs = h.registerRequests()
	if got := csrKeyHash(t, reqs[len(reqs)-1].CSR); got != first {
		t.Errorf("joined again with key %s, want the stored credentials' %s", got, first)
	}
}

func (h *fakeHub) registerRequests() []registerRequestCopy {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]registerRequestCopy, len(h.registers))
	for i, r := range h.registers {
		out[i] = registerRequestCopy{CSR: r.CSR}
	}
	return out
}

type registerRequestCopy struct{ CSR string }

func csrKeyHash(t *testing.T, csrPEM string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil {
		t.Fatal("CSR: no PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(csr.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func storedKeyHash(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	key, err := parseECKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	h, err := KeyHash(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
