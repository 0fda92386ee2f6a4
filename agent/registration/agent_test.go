package registration

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"github.com/stretchr/testify/require"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestJoinWaitsForAcceptance: pending answers are polled with the same
// request until the hub accepts; the credentials are stored and the first
// heartbeat uses them.
func TestJoinWaitsForAcceptance(t *testing.T) {
	h := newFakeHub(t)
	h.set(func(h *fakeHub) { h.pending, h.period = 3, 7 })
	a, logs := newTestAgent(t, h, t.TempDir(), nil)
	start(t, a)
	h.mu.Lock()
	defer h.mu.Unlock()

	if len(h.registers) != 4 {
		t.Fatalf("%d registration requests, want 3 pending and 1 accepted", len(h.registers))
	}
	for i, req := range h.registers {
		if req.CSR != h.registers[0].CSR || req.ClusterName != "c1" || req.AgentVersion != "v0.0.0-test" {
			t.Errorf("request %d differs from the first: %+v", i, req)
		}
		if h.bearers[i] != "Bearer "+h.token {
			t.Errorf("request %d: Authorization %q", i, h.bearers[i])
		}
	}
	claims := map[string]string{}
	for _, c := range h.registers[0].Claims {
		claims[c.Name] = c.Value
	}
	if claims[agentapi.ClaimClusterID] != testClusterUID || claims[agentapi.ClaimPlatform] != "linux/amd64" {
		t.Errorf("claims %v", claims)
	}
	if n := strings.Count(logs.String(), "waiting for the hub to accept cluster c1"); n != 1 {
		t.Errorf("logged the wait %d times, want once:\n%s", n, logs)
	}
	if a.Stats().Registrations(ResultPending) != 3 || a.Stats().Registrations(ResultAccepted) != 1 {
		t.Errorf("registrations: pending %d accepted %d", a.Stats().Registrations(ResultPending), a.Stats().Registrations(ResultAccepted))
	}
	if a.period != 7*time.Second {
		t.Errorf("heartbeat period %s, want the hub's 7s", a.period)
	}

	p := a.Paths()
	key, err := os.Stat(p.Key)
	if err != nil {
		t.Fatal(err)
	}
	if key.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", key.Mode().Perm())
	}
	cert := readCert(t, p.Cert)
	if cert.Subject.CommonName != "c1" {
		t.Errorf("certificate names %q", cert.Subject.CommonName)
	}
	if ca, _ := os.ReadFile(p.CA); string(ca) != string(h.caPEM) {
		t.Errorf("CA bundle not stored")
	}
	beats := h.heartbeats
	if len(beats) != 1 || beats[0].serial != cert.SerialNumber.String() || !beats[0].req.ClusterAPIReachable {
		t.Errorf("heartbeats after the join: %+v, want one with certificate %s", beats, cert.SerialNumber)
	}
	if a.Stats().CertificateExpiry() != cert.NotAfter.Unix() {
		t.Errorf("expiry stat %d, want %d", a.Stats().CertificateExpiry(), cert.NotAfter.Unix())
	}
}

// TestJoinHonoursRetryAfter: a pending answer's RetryAfterSeconds is the
// poll interval.
func TestJoinHonoursRetryAfter(t *testing.T) {
	h := newFakeHub(t)
	h.set(func(h *fakeHub) { h.pending, h.retryAfter = 1, 1 })
	a, _ := newTestAgent(t, h, t.TempDir(), nil)
	t0 := time.Now()
	start(t, a)
	if d := time.Since(t0); d < time.Second {
		t.Errorf("joined after %s, before the 1 s the hub asked to wait", d)
	}
}

// TestJoinRetriesUnavailableHub: 503 answers are retried with backoff.
func TestJoinRetriesUnavailableHub(t *testing.T) {
	h := newFakeHub(t)
	h.set(func(h *fakeHub) { h.unavailable = 2 })
	a, _ := newTestAgent(t, h, t.TempDir(), nil)
	start(t, a)
	if a.Stats().Registrations(ResultError) != 2 || a.Stats().Registrations(ResultAccepted) != 1 {
		t.Errorf("registrations: error %d accepted %d", a.Stats().Registrations(ResultError), a.Stats().Registrations(ResultAccepted))
	}
}

// TestJoinRetriesUnreachableHub: a hub that is not listening yet is waited
// for, and the context ends the wait.
func TestJoinRetriesUnreachableHub(t *testing.T) {
	h := newFakeHub(t)
	h.srv.Close()
	a, _ := newTestAgent(t, h, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := a.Start(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start against a closed hub = %v, want the context's deadline", err)
	}
}

// TestPinMismatchRefused: a CA that does not match --hub-ca-hash, or a hub
// whose serving certificate is not signed by the pinned CA, gets no token.
func TestPinMismatchRefused(t *testing.T) {
	t.Run("other CA", func(t *testing.T) {
		h := newFakeHub(t)
		other := testbed.NewCA(t, "other")
		a, _ := newTestAgent(t, h, t.TempDir(), func(c *Config) { c.CAHash = agentapi.CAHash(other.Cert()) })
		err := a.Start(context.Background())
		var pm *PinMismatchError
		if !errors.As(err, &pm) || !strings.Contains(err.Error(), "does not match --hub-ca-hash") {
			t.Fatalf("Start = %v, want a pin mismatch", err)
		}
		if bearers(h) != 0 {
			t.Errorf("the token was sent to a hub whose CA does not match the pin")
		}
		if HasCredentials(a.cfg.StateDir) {
			t.Errorf("credentials stored")
		}
	})
	t.Run("serving certificate from another CA", func(t *testing.T) {
		// The server hands out the pinned CA but is not the hub.
		h := newFakeHub(t)
		impostor := newFakeHub(t)
		impostor.caPEM = h.caPEM
		a, _ := newTestAgent(t, h, t.TempDir(), func(c *Config) { c.Hub = impostor.srv.URL })
		err := a.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "does not verify against the pinned CA") {
			t.Fatalf("Start = %v, want the serving certificate refused", err)
		}
		if bearers(impostor)+bearers(h) != 0 {
			t.Errorf("the token was sent")
		}
	})
}

// TestJoinWithCAFile: --hub-ca-file verifies the hub instead of a fetched,
// pinned CA; with a pin as well, the file must hold the pinned CA.
func TestJoinWithCAFile(t *testing.T) {
	h := newFakeHub(t)
	caFile := filepath.Join(t.TempDir(), "ca.crt")
	if err := os.WriteFile(caFile, h.caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	a, _ := newTestAgent(t, h, t.TempDir(), func(c *Config) { c.CAHash, c.CAFile = "", caFile })
	start(t, a)
	if n := h.count(func(h *fakeHub) int { return h.caFetches }); n != 0 {
		t.Errorf("fetched the CA %d times although --hub-ca-file was given", n)
	}

	other := testbed.NewCA(t, "other")
	b, _ := newTestAgent(t, h, t.TempDir(), func(c *Config) { c.CAHash, c.CAFile = agentapi.CAHash(other.Cert()), caFile })
	var pm *PinMismatchError
	if err := b.Start(context.Background()); !errors.As(err, &pm) {
		t.Errorf("Start with a CA file that does not match the pin = %v", err)
	}
}

// TestRestartReusesCredentials: a second agent on the same state folder
// does not join again, token or not, and heartbeats with the stored
// certificate.
func TestRestartReusesCredentials(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	a, _ := newTestAgent(t, h, dir, nil)
	start(t, a)
	serial := readCert(t, a.Paths().Cert).SerialNumber.String()

	for _, token := range []string{h.token, ""} {
		b, logs := newTestAgent(t, h, dir, func(c *Config) { c.BootstrapToken = token })
		start(t, b)
		if h.count(registrations) != 1 {
			t.Fatalf("restart registered again (%d registrations)", h.count(registrations))
		}
		if beats := h.beats(); beats[len(beats)-1].serial != serial {
			t.Errorf("restart heartbeats with certificate %s, want the stored %s", beats[len(beats)-1].serial, serial)
		}
		if !strings.Contains(logs.String(), "using the stored credentials") {
			t.Errorf("logs:\n%s", logs)
		}
	}
}

// TestRejoinWhenCredentialsAreRefusedOrExpired: an agent whose stored
// credentials the hub no longer knows (401 on the first heartbeat), or whose
// certificate expired, joins again with its token; without a token it
// stops, saying what to do.
func TestRejoinWhenCredentialsAreRefusedOrExpired(t *testing.T) {
	h := newFakeHub(t)
	dir := t.TempDir()
	a, _ := newTestAgent(t, h, dir, nil)
	start(t, a)
	first := readCert(t, a.Paths().Cert).SerialNumber.String()

	h.forget()
	noToken, _ := newTestAgent(t, h, dir, func(c *Config) { c.BootstrapToken = "" })
	err := noToken.Start(context.Background())
	if !errors.Is(err, ErrCredentialsRefused) || !strings.Contains(err.Error(), "--bootstrap-token") {
		t.Fatalf("Start without a token on refused credentials = %v", err)
	}

	b, _ := newTestAgent(t, h, dir, nil)
	start(t, b)
	second := readCert(t, b.Paths().Cert).SerialNumber.String()
	if h.count(registrations) != 2 || second == first {
		t.Fatalf("after a 401: %d registrations, certificate %s (was %s); want a new join", h.count(registrations), second, first)
	}

	// Two days later the stored certificate (1 h) has expired.
	later := func() time.Time { return time.Now().Add(48 * time.Hour) }
	expired, _ := newTestAgent(t, h, dir, func(c *Config) { c.BootstrapToken = "" })
	expired.now = later
	if err := expired.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "expired") || !strings.Contains(err.Error(), "--bootstrap-token") {
		t.Fatalf("Start without a token on an expired certificate = %v", err)
	}
	c, _ := newTestAgent(t, h, dir, nil)
	c.now = later
	start(t, c)
	if h.count(registrations) != 3 {
		t.Fatalf("an expired certificate did not make the agent join again")
	}
}

// TestRegistrationRefusalsAreFatal: a refused token and a taken name end
// the join at once with a clear error that never holds the token.
func TestRegistrationRefusalsAreFatal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		setup  func(h *fakeHub, c *Config)
		target error
		want   []string
	}{
		{"expired token", func(h *fakeHub, c *Config) { c.BootstrapToken = "zzzzzz.0000000000000000" }, ErrTokenRefused,
			[]string{"refused the bootstrap token (401)", "expired at 2026-11-01", "create a new token"}},
		{"name taken", func(h *fakeHub, _ *Config) {
			h.registerStatus, h.registerMessage = http.StatusConflict, `cluster name "c1" is registered to another cluster (id.k8s.io 1234)`
		}, ErrNameTaken, []string{"registered to another cluster (409)", "id.k8s.io 1234"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newFakeHub(t)
			var token string
			a, logs := newTestAgent(t, h, t.TempDir(), func(c *Config) { tc.setup(h, c); token = c.BootstrapToken })
			err := a.Start(context.Background())
			if !errors.Is(err, tc.target) {
				t.Fatalf("Start = %v, want %v", err, tc.target)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), token) || strings.Contains(logs.String(), token) {
				t.Errorf("the token leaks: error %q, logs:\n%s", err, logs)
			}
			if bearers(h) != 1 {
				t.Errorf("%d registration attempts, want 1 (no retry)", bearers(h))
			}
			if a.Stats().Registrations(ResultRefused) != 1 {
				t.Errorf("refused registrations %d", a.Stats().Registrations(ResultRefused))
			}
		})
	}
}

// TestHeartbeatsCarryClusterHealthAndSurviveHubErrors: heartbeats report
// the cluster API's state and its error; hub errors are counted, retried,
// and reported as the agent's health until heartbeats go through again.
func TestHeartbeatsCarryClusterHealthAndSurviveHubErrors(t *testing.T) {
	h := newFakeHub(t)
	cluster := &fakeCluster{}
	var healthMu sync.Mutex
	var health []error
	lastHealth := func() (int, error) {
		healthMu.Lock()
		defer healthMu.Unlock()
		if len(health) == 0 {
			return 0, nil
		}
		return len(health), health[len(health)-1]
	}
	a, _ := newTestAgent(t, h, t.TempDir(), func(c *Config) {
		c.Cluster = cluster
		c.ReportHealth = func(err error) {
			healthMu.Lock()
			defer healthMu.Unlock()
			health = append(health, err)
		}
	})
	start(t, a)
	a.period = 10 * time.Millisecond

	cluster.mu.Lock()
	cluster.down = errors.New("dial tcp 10.0.0.1:6443: connect: connection refused")
	cluster.mu.Unlock()
	h.set(func(h *fakeHub) { h.heartbeatStatus, h.heartbeatMessage = http.StatusServiceUnavailable, "not ready" })
	done, _ := run(t, a)
	require.Eventually(t, func() bool { return a.Stats().Heartbeats(ResultError) >= 3 }, 20*time.Second, 5*time.Millisecond, "failed heartbeats")
	if _, err := lastHealth(); err == nil || !strings.Contains(err.Error(), "heartbeats fail") || !strings.Contains(err.Error(), "not ready") {
		t.Errorf("health while heartbeats fail: %v", err)
	}
	h.set(func(h *fakeHub) { h.heartbeatStatus = 0 })
	require.Eventually(t, func() bool { n, err := lastHealth(); return n > 1 && err == nil }, 20*time.Second, 5*time.Millisecond, "healthy once heartbeats go through")
	require.Eventually(t, func() bool {
		b := h.beats()
		last := b[len(b)-1]
		return last.req.ClusterAPIReachable == false && strings.Contains(last.req.ClusterAPIError, "connection refused") && a.Stats().Heartbeats(ResultOK) >= 2
	}, 20*time.Second, 5*time.Millisecond, "a heartbeat reporting the cluster API down")
	select {
	case err := <-done:
		t.Fatalf("Run ended on hub errors: %v", err)
	default:
	}
}

// TestHeartbeat403StopsAndRemovesCredentials: a deregistered cluster's
// agent stops with the hub's message and forgets its credentials.
func TestHeartbeat403StopsAndRemovesCredentials(t *testing.T) {
	h := newFakeHub(t)
	a, logs := newTestAgent(t, h, t.TempDir(), nil)
	start(t, a)
	a.period = 10 * time.Millisecond
	done, _ := run(t, a)
	require.Eventually(t, func() bool { return a.Stats().Heartbeats(ResultOK) >= 2 }, 20*time.Second, 5*time.Millisecond, "a heartbeat")
	h.set(func(h *fakeHub) {
		h.heartbeatStatus, h.heartbeatMessage, h.deregHeader = http.StatusForbidden, `deregistered: cluster "c1" is not registered with this hub`, true
	})
	var err error
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Run goes on after a 403")
	}
	var de *DeregisteredError
	if !errors.As(err, &de) || !errors.Is(err, ErrDeregistered) {
		t.Fatalf("Run = %v, want a DeregisteredError", err)
	}
	want := `cluster c1 was deregistered by the hub: deregistered: cluster "c1" is not registered with this hub`
	if err.Error() != want || !strings.Contains(logs.String(), `msg="cluster c1 was deregistered by the hub: deregistered: cluster \"c1\" is not registered`) {
		t.Errorf("error %q, want %q; logs:\n%s", err, want, logs)
	}
	if _, err := os.Stat(a.Paths().Dir); !os.IsNotExist(err) {
		t.Errorf("credentials folder still there: %v", err)
	}
	if a.Stats().Heartbeats(ResultDeregistered) != 1 {
		t.Errorf("deregistered heartbeats %d", a.Stats().Heartbeats(ResultDeregistered))
	}
}

// TestRenewalReplacesCredentials: renewal stores a new key and certificate
// in place, and the next heartbeat presents the new certificate.
func TestRenewalReplacesCredentials(t *testing.T) {
	h := newFakeHub(t)
	a, _ := newTestAgent(t, h, t.TempDir(), nil)
	start(t, a)
	p := a.Paths()
	oldKey, _ := os.ReadFile(p.Key)
	oldSerial := readCert(t, p.Cert).SerialNumber.String()

	if err := a.renew(context.Background()); err != nil {
		t.Fatal(err)
	}
	newKey, _ := os.ReadFile(p.Key)
	newCert := readCert(t, p.Cert)
	if string(newKey) == string(oldKey) || newCert.SerialNumber.String() == oldSerial {
		t.Fatal("renewal did not replace the key and certificate")
	}
	if _, err := parseCredentials(newKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newCert.Raw}), h.caPEM); err != nil {
		t.Fatalf("stored key and certificate do not pair: %v", err)
	}
	if fi, _ := os.Stat(p.Key); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
	gens, _ := filepath.Glob(filepath.Join(p.Dir, genPrefix+"*"))
	if len(gens) != 1 {
		t.Errorf("generations left: %v", gens)
	}
	if err := a.heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	if b := h.beats(); b[len(b)-1].serial != newCert.SerialNumber.String() {
		t.Errorf("heartbeat after renewal used certificate %s, want the new %s", b[len(b)-1].serial, newCert.SerialNumber)
	}
	if a.Stats().Renewals(ResultOK) != 1 || a.Stats().CertificateExpiry() != newCert.NotAfter.Unix() {
		t.Errorf("renewals %d, expiry %d", a.Stats().Renewals(ResultOK), a.Stats().CertificateExpiry())
	}
}

// TestRunRenewsAtFourFifthsOfTheLifetime: with 4 s certificates, Run renews
// after about 3.2 s and heartbeats with the new certificate from then on.
func TestRunRenewsAtFourFifthsOfTheLifetime(t *testing.T) {
	h := newFakeHub(t)
	h.set(func(h *fakeHub) { h.ttl = 4 * time.Second })
	a, _ := newTestAgent(t, h, t.TempDir(), nil)
	start(t, a)
	first := readCert(t, a.Paths().Cert)
	a.period = 20 * time.Millisecond
	run(t, a)
	require.Eventually(t, func() bool { return a.Stats().Renewals(ResultOK) >= 1 }, 20*time.Second, 5*time.Millisecond, "a renewal")
	renewedAt := time.Now()
	lifetime := first.NotAfter.Sub(first.NotBefore)
	if early := first.NotBefore.Add(lifetime * 3 / 4); renewedAt.Before(early) {
		t.Errorf("renewed at %s, before 3/4 of the lifetime (%s)", renewedAt, early)
	}
	current := func() string {
		c, err := os.ReadFile(a.Paths().Cert)
		if err != nil {
			return ""
		}
		b, _ := pem.Decode(c)
		cert, _ := x509.ParseCertificate(b.Bytes)
		return cert.SerialNumber.String()
	}
	require.Eventually(t, func() bool {
		b := h.beats()
		return b[len(b)-1].serial != first.SerialNumber.String() && b[len(b)-1].serial == current()
	}, 20*time.Second, 5*time.Millisecond, "a heartbeat with the renewed certificate")
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
