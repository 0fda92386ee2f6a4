package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestRegistrationSecurity attacks the registration gateway of a real hub
// on a real control plane, as a holder of some valid bootstrap token would:
// it cannot take over a registered cluster by re-registering its name and
// id claim (no certificate, nothing about the cluster changes, its agent
// keeps working, the attempt is audited); the cluster's own key, or its
// certificate, still re-registers; a new key waits for an administrator's
// approval; tokens stay in their cluster set; reserved names, bad tokens
// and floods from one source are refused, telling nothing.
func TestRegistrationSecurity(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "regsec", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	ca := testbed.NewCA(t, "regsec-agents")
	const ns = "fleetreg-system"
	hubLogs := &lockedBuffer{}
	hb := hubtest.StartLogged(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.Namespace = ns
		c.Registration.DefaultHeartbeatPeriodSeconds = 1
		c.Registration.GracePeriods = 3
		c.Registration.InventoryInterval = time.Second
	}), slog.New(slog.NewJSONHandler(hubLogs, nil)))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	// Long enough for building the fleetpulse command on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := registration.NewTokens(kube, ns)
	newToken := func(o registration.TokenOptions) (string, registration.Token) {
		o.TTL = time.Hour
		tok, info, err := tokens.Create(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		return tok, info
	}
	prodAuto, prodInfo := newToken(registration.TokenOptions{AutoAccept: true, ClusterSet: "prod"})
	devManual, _ := newToken(registration.TokenOptions{ClusterSet: "dev"})
	openManual, openInfo := newToken(registration.TokenOptions{})
	pin := caPin(t, ca.CertFile)
	secrets := []string{prodAuto, devManual, openManual}
	t.Cleanup(func() {
		for _, s := range secrets {
			if _, secret, _ := strings.Cut(s, "."); strings.Contains(hubLogs.String(), secret) {
				t.Errorf("a bootstrap token's secret appears in the hub's logs")
			}
		}
	})

	t.Run("takeover", func(t *testing.T) {
		victim := startInProcessAgent(t, agentsURL, pin, prodAuto, "victim", "uid-victim", t.TempDir())
		if err := victim.started(ctx); err != nil {
			t.Fatalf("the victim's agent did not join: %v\n%s", err, victim.logs)
		}
		mc := getCluster(t, kube, "victim")
		agentKey := victim.keyHash(t)
		if mc.Annotations[registration.AnnotationKeySHA256] != agentKey || !mc.Spec.Accepted {
			t.Fatalf("ManagedCluster victim: key %q, accepted %v; want the agent's key %s, accepted", mc.Annotations[registration.AnnotationKeySHA256], mc.Spec.Accepted, agentKey)
		}
		// The id claim is no secret: it is on the ManagedCluster.
		id := mc.Annotations["fleetpulse.io/cluster-id"]
		waitCondition(t, kube, "victim", fleetv1.ConditionAvailable, metav1.ConditionTrue)
		beatsBefore := victim.agent.Stats().Heartbeats(agentreg.ResultOK)

		attacker := clientFrom(t, ca.CertFile, "127.0.0.2", nil)
		// A token of another cluster set is refused, naming no id.
		code, body, _ := register(t, attacker, agentsURL, devManual, "victim", id)
		if code != http.StatusConflict || strings.Contains(body, id) {
			t.Errorf("re-register victim with a token of cluster set dev: %d %q, want 409 naming no id", code, body)
		}
		// Any other token, even victim's own auto-accepting one, gets no
		// certificate for another key: a re-key request, pending.
		attackKey := newKey(t)
		for _, tok := range []string{openManual, prodAuto, openManual} {
			code, body, got := registerWith(t, attacker, agentsURL, tok, "victim", id, attackKey)
			if code != http.StatusOK || got.accepted || len(got.certPEM) != 0 || !strings.Contains(body, "administrator must approve") {
				t.Fatalf("re-register victim with another key: %d %s; want pending, no certificate, an administrator to approve", code, body)
			}
		}
		if code, _, got := register(t, attacker, agentsURL, prodAuto, "victim", id); code != http.StatusOK || got.accepted {
			t.Fatalf("re-register victim with a third key: %d, accepted %v", code, got.accepted)
		}
		after := getCluster(t, kube, "victim")
		reqs, err := registration.RekeyRequests(after)
		if err != nil || len(reqs) != 2 || reqs[0].KeySHA256 != keyHashOf(t, attackKey) || reqs[0].TokenID != openInfo.ID || reqs[0].Source != "127.0.0.2" {
			t.Errorf("re-key requests of victim: %+v (%v); want 2, the first for the attacker's key with token %s from 127.0.0.2", reqs, err, openInfo.ID)
		}
		if after.UID != mc.UID || !after.Spec.Accepted || after.Annotations[registration.AnnotationKeySHA256] != agentKey || after.Labels[fleetv1.LabelClusterSet] != "prod" {
			t.Errorf("the attempts changed victim: uid %s→%s, accepted %v, key %q, set %q", mc.UID, after.UID, after.Spec.Accepted,
				after.Annotations[registration.AnnotationKeySHA256], after.Labels[fleetv1.LabelClusterSet])
		}
		// The agent keeps heartbeating on its certificate.
		pollUntil(ctx, t, "the victim's agent heartbeating after the attempts", func() (bool, string) {
			n := victim.agent.Stats().Heartbeats(agentreg.ResultOK)
			return n >= beatsBefore+3, fmt.Sprintf("%d heartbeats ok (%d before)", n, beatsBefore)
		})
		if n := victim.agent.Stats().Heartbeats(agentreg.ResultUnauthorized) + victim.agent.Stats().Heartbeats(agentreg.ResultDeregistered); n != 0 {
			t.Errorf("%d of the victim's heartbeats refused", n)
		}
		waitCondition(t, kube, "victim", fleetv1.ConditionAvailable, metav1.ConditionTrue)
		// Audited: counted, and one line each.
		if got := auditCount(t, httpURL, "rekey", "requested"); got != 2 {
			t.Errorf("fleetpulse_hub_registration_audit_total{event=rekey,outcome=requested} = %g, want 2", got)
		}
		if got := auditCount(t, httpURL, "scope", "refused"); got != 1 {
			t.Errorf("fleetpulse_hub_registration_audit_total{event=scope,outcome=refused} = %g, want 1", got)
		}
		if n := auditLines(hubLogs, map[string]string{"event": "rekey", "outcome": "requested", "cluster": "victim", "token_id": openInfo.ID,
			"source": "127.0.0.2", "key_sha256": keyHashOf(t, attackKey)}); n != 1 {
			t.Errorf("%d audit lines of the attacker's re-key request, want 1:\n%s", n, hubLogs)
		}

		// The holder of victim's key re-registers, with any token of its set.
		key, certPEM := victim.credentials(t)
		code, body, got := registerWith(t, attacker, agentsURL, prodAuto, "victim", id, key)
		if code != http.StatusOK || !got.accepted {
			t.Fatalf("re-register victim with its own key: %d %s", code, body)
		}
		if c := parseCertPEM(t, got.certPEM); c.Subject.CommonName != "victim" || registration.ClusterUID(c) != mc.UID {
			t.Errorf("certificate for victim's key names %s/%s", c.Subject.CommonName, registration.ClusterUID(c))
		}
		// Over mutual TLS with victim's certificate, a new key is taken and
		// becomes victim's key.
		holder := clientFrom(t, ca.CertFile, "127.0.0.2", &tls.Certificate{Certificate: [][]byte{parseCertPEM(t, certPEM).Raw}, PrivateKey: key})
		rotated := newKey(t)
		if code, body, got := registerWith(t, holder, agentsURL, prodAuto, "victim", id, rotated); code != http.StatusOK || !got.accepted {
			t.Fatalf("re-register victim over mutual TLS with a new key: %d %s", code, body)
		}
		if k := getCluster(t, kube, "victim").Annotations[registration.AnnotationKeySHA256]; k != keyHashOf(t, rotated) {
			t.Errorf("victim's key after rotating over mutual TLS: %s, want %s", k, keyHashOf(t, rotated))
		}
		if got := auditCount(t, httpURL, "rekey", "rotated"); got != 1 {
			t.Errorf("audit rekey/rotated = %g, want 1", got)
		}
	})

	t.Run("rekey approval", func(t *testing.T) {
		first := startInProcessAgent(t, agentsURL, pin, prodAuto, "lost", "uid-lost", t.TempDir())
		if err := first.started(ctx); err != nil {
			t.Fatalf("join lost: %v\n%s", err, first.logs)
		}
		oldKey := first.keyHash(t)
		first.stop()

		// The agent lost its state: it registers with a new key and waits.
		state := t.TempDir()
		second := startInProcessAgent(t, agentsURL, pin, prodAuto, "lost", "uid-lost", state)
		newHash := ""
		pollUntil(ctx, t, "the agent waiting for its new key's approval", func() (bool, string) {
			second.mustWait(t)
			newHash = joinKeyHash(state)
			return newHash != "" && strings.Contains(second.logs.String(), "key_sha256="+newHash) &&
				strings.Contains(second.logs.String(), "administrator must approve"), second.logs.String()
		})
		// A restart asks again with the same key: still one request.
		second.stop()
		second = startInProcessAgent(t, agentsURL, pin, prodAuto, "lost", "uid-lost", state)
		pollUntil(ctx, t, "the restarted agent waiting", func() (bool, string) {
			second.mustWait(t)
			return strings.Contains(second.logs.String(), "administrator must approve"), second.logs.String()
		})
		if !strings.Contains(second.logs.String(), "registering with the key of the unfinished join") {
			t.Errorf("the restarted agent did not reuse its join's key:\n%s", second.logs)
		}
		mc := getCluster(t, kube, "lost")
		reqs, _ := registration.RekeyRequests(mc)
		if len(reqs) != 1 || reqs[0].KeySHA256 != newHash || reqs[0].TokenID != prodInfo.ID || mc.Annotations[registration.AnnotationKeySHA256] != oldKey || !mc.Spec.Accepted {
			t.Fatalf("lost while its new key waits: requests %+v, key %s, accepted %v; want one request for %s, key %s kept", reqs,
				mc.Annotations[registration.AnnotationKeySHA256], mc.Spec.Accepted, newHash, oldKey)
		}

		// The administrator sees the request, then approves the key the
		// agent logged.
		bin := buildBinary(t, "fleetpulse")
		admin := func(args ...string) string {
			cmd := exec.CommandContext(ctx, bin, append(append([]string{"hub", "accept", "lost"}, args...),
				"--control-plane.kubeconfig="+cp.KubeconfigPath, "--registration.namespace="+ns)...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("fleetpulse hub accept lost %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := admin(); !strings.Contains(out, "pending re-key request: key "+newHash) || !strings.Contains(out, "--rekey --key-sha256 "+newHash) {
			t.Errorf("fleetpulse hub accept lost does not show the pending re-key:\n%s", out)
		}
		if out := admin("--rekey", "--key-sha256", newHash); !strings.Contains(out, "re-key approved: key "+newHash) || !strings.Contains(out, "previous key "+oldKey) {
			t.Errorf("fleetpulse hub accept lost --rekey:\n%s", out)
		}
		if err := second.started(ctx); err != nil {
			t.Fatalf("the agent with the approved key did not join: %v\n%s", err, second.logs)
		}
		if got := second.keyHash(t); got != newHash {
			t.Errorf("the agent holds key %s, want the approved %s", got, newHash)
		}
		waitCondition(t, kube, "lost", fleetv1.ConditionAvailable, metav1.ConditionTrue)
		pollUntil(ctx, t, "the approval audited", func() (bool, string) {
			_, recorded := getCluster(t, kube, "lost").Annotations[registration.AnnotationRekeyApproved]
			return !recorded && auditCount(t, httpURL, "rekey", "approved") == 1 &&
				auditLines(hubLogs, map[string]string{"event": "rekey", "outcome": "approved", "cluster": "lost", "key_sha256": newHash}) == 1, hubLogs.String()
		})
	})

	t.Run("token scope", func(t *testing.T) {
		c := clientFrom(t, ca.CertFile, "127.0.0.3", nil)
		key := newKey(t)
		if code, body, got := registerWith(t, c, agentsURL, devManual, "devc", "uid-devc", key); code != http.StatusOK || got.accepted {
			t.Fatalf("register devc with the dev token: %d %s, want pending", code, body)
		}
		// The prod token auto-accepts, but not a cluster of set dev.
		if code, body, _ := registerWith(t, c, agentsURL, prodAuto, "devc", "uid-devc", key); code != http.StatusConflict {
			t.Errorf("re-register devc (set dev) with the prod token: %d %q, want 409", code, body)
		}
		if mc := getCluster(t, kube, "devc"); mc.Spec.Accepted || mc.Labels[fleetv1.LabelClusterSet] != "dev" {
			t.Errorf("devc after the prod token's attempt: accepted %v, set %q", mc.Spec.Accepted, mc.Labels[fleetv1.LabelClusterSet])
		}
	})

	t.Run("reserved names", func(t *testing.T) {
		c := clientFrom(t, ca.CertFile, "127.0.0.4", nil)
		for _, name := range []string{"default", "kube-system", "kube-fleet", "fleetpulse-system", ns} {
			code, body, _ := register(t, c, agentsURL, prodAuto, name, "uid-"+name)
			if code != http.StatusBadRequest || !strings.Contains(body, "reserved") || !strings.Contains(body, name) {
				t.Errorf("register %s: %d %q, want 400 saying the name is reserved", name, code, body)
			}
			if err := kube.Get(ctx, client.ObjectKey{Name: name}, &fleetv1.ManagedCluster{}); !apierrors.IsNotFound(err) {
				t.Errorf("ManagedCluster %s exists after its refusal: %v", name, err)
			}
		}
		if got := auditCount(t, httpURL, "reserved_name", "refused"); got != 5 {
			t.Errorf("audit reserved_name/refused = %g, want 5", got)
		}
	})

	t.Run("uniform token refusal", func(t *testing.T) {
		expired, expiredInfo, _ := tokens.Create(ctx, registration.TokenOptions{TTL: time.Millisecond})
		revoked, revokedInfo, _ := tokens.Create(ctx, registration.TokenOptions{TTL: time.Hour})
		if err := tokens.Revoke(ctx, revokedInfo.ID); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, expired, revoked)
		wrongSecret := openInfo.ID + ".0123456789abcdef"
		before := auditCount(t, httpURL, "token", "refused")
		c := clientFrom(t, ca.CertFile, "127.0.0.5", nil)
		for what, tok := range map[string]string{"expired": expired, "revoked": revoked, "unknown": "zzzzzz.0123456789abcdef",
			"wrong secret": wrongSecret, "malformed": "junk"} {
			code, body, _ := register(t, c, agentsURL, tok, "tokc", "uid-tokc")
			if code != http.StatusUnauthorized || strings.TrimSpace(body) != "bootstrap token is invalid, expired or revoked" {
				t.Errorf("a token %s: %d %q, want 401 with the one message for every bad token", what, code, body)
			}
		}
		if got := auditCount(t, httpURL, "token", "refused") - before; got != 5 {
			t.Errorf("audit token/refused grew by %g, want 5", got)
		}
		for _, id := range []string{expiredInfo.ID, revokedInfo.ID, openInfo.ID} {
			if n := auditLines(hubLogs, map[string]string{"event": "token", "outcome": "refused", "token_id": id, "source": "127.0.0.5"}); n != 1 {
				t.Errorf("%d audit lines of the refusal of token %s, want 1", n, id)
			}
		}
	})

	t.Run("per-source limit", func(t *testing.T) {
		flood := clientFrom(t, ca.CertFile, "127.0.0.9", nil)
		codes := map[int]int{}
		var limited *http.Response
		var limitedBody string
		for range 30 {
			req, _ := http.NewRequest(http.MethodPost, agentsURL+agentapi.PathRegister, strings.NewReader(`{}`))
			req.Header.Set("Authorization", "Bearer zzzzzz.0123456789abcdef")
			resp, err := flood.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			codes[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests && limited == nil {
				limited, limitedBody = resp, string(body)
			}
		}
		// A burst of 20, then 1 per second: a second may pass in the loop.
		if codes[http.StatusUnauthorized] < 20 || codes[http.StatusUnauthorized] > 22 || codes[http.StatusTooManyRequests] < 8 {
			t.Fatalf("30 calls at once from one source: %v; want the burst of 20 answered, the rest 429", codes)
		}
		if s, err := strconv.Atoi(limited.Header.Get("Retry-After")); err != nil || s < 1 || !strings.Contains(limitedBody, "1 per second") || !strings.Contains(limitedBody, "20") {
			t.Errorf("429: Retry-After %q, body %q; want seconds to wait and the limit named", limited.Header.Get("Retry-After"), limitedBody)
		}
		if code, _, _ := register(t, clientFrom(t, ca.CertFile, "127.0.0.10", nil), agentsURL, "zzzzzz.0123456789abcdef", "x", "uid-x"); code != http.StatusUnauthorized {
			t.Errorf("another source while 127.0.0.9 is limited: %d, want 401", code)
		}
		if got := auditCount(t, httpURL, "rate_limit", "rate_limited"); got != float64(codes[http.StatusTooManyRequests]) {
			t.Errorf("audit rate_limit/rate_limited = %g, want %d", got, codes[http.StatusTooManyRequests])
		}
		if n := auditLines(hubLogs, map[string]string{"event": "rate_limit", "source": "127.0.0.9"}); n != 1 {
			t.Errorf("%d log lines for one bout over the limit, want 1", n)
		}
	})
}

// TestRegistrationDeregisteredHook: callbacks given to OnDeregistered hear
// of a cluster once its ManagedCluster's finalizer ran, and not of others.
func TestRegistrationDeregisteredHook(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "reghook", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	tca := testbed.NewCA(t, "reghook-agents")
	ca, err := registration.LoadCA(tca.CertFile, tca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := registration.DefaultConfig()
	if err := controlplane.InstallAt(ctx, cp.RESTConfig, cfg.Namespace); err != nil {
		t.Fatal(err)
	}
	noTelemetry := func(context.Context, string, time.Time) (promql.Vector, error) { return nil, nil }
	planeCfg := controlplane.DefaultConfig()
	planeCfg.LeaderElect = false // one manager alone on its control plane
	plane, err := controlplane.New(cp.RESTConfig, planeCfg, cfg.Namespace, nil, nil, registration.CacheByObject(cfg))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := registration.Setup(plane.Manager(), cfg, ca, noTelemetry, nil, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	heard := make(chan string, 16)
	svc.OnDeregistered(func(cluster string) { heard <- cluster })
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- plane.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("registration: %v", err)
		}
	})
	if !plane.WaitReady(ctx) {
		t.Fatal("the control plane's caches did not sync")
	}
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gone", "stays"} {
		if err := kube.Create(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: fleetv1.ManagedClusterSpec{Accepted: true}}); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(ctx, t, "the finalizer on gone", func() (bool, string) {
		mc := getCluster(t, kube, "gone")
		return len(mc.Finalizers) > 0, fmt.Sprint(mc.Finalizers)
	})
	if err := kube.Delete(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "gone"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case name := <-heard:
		if name != "gone" {
			t.Fatalf("OnDeregistered heard of %q, want gone", name)
		}
	case <-ctx.Done():
		t.Fatal("OnDeregistered did not hear of gone's deregistration")
	}
	pollUntil(ctx, t, "gone deleted", func() (bool, string) {
		err := kube.Get(ctx, client.ObjectKey{Name: "gone"}, &fleetv1.ManagedCluster{})
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	for len(heard) > 0 {
		if name := <-heard; name != "gone" {
			t.Fatalf("OnDeregistered heard of %q, which is registered", name)
		}
	}
}

// lockedBuffer collects logs written from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// auditLines counts the hub's "registration audit" log lines holding every
// field of want.
func auditLines(logs *lockedBuffer, want map[string]string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || line["msg"] != "registration audit" {
			continue
		}
		match := true
		for k, v := range want {
			if fmt.Sprint(line[k]) != v {
				match = false
			}
		}
		if match {
			n++
		}
	}
	return n
}

// auditCount reads fleetpulse_hub_registration_audit_total{event,outcome}
// from the hub's /metrics.
func auditCount(t *testing.T, httpURL, event, outcome string) float64 {
	t.Helper()
	resp, err := http.Get(httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	prefix := fmt.Sprintf(`fleetpulse_hub_registration_audit_total{event=%q,outcome=%q} `, event, outcome)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// clientFrom is a client that trusts the hub and connects from localIP (a
// loopback address of its own, so that it has its own registration limit),
// with a client certificate when cert is given.
func clientFrom(t *testing.T, caFile, localIP string, cert *tls.Certificate) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, TLSClientConfig: cfg}}
}

func getCluster(t *testing.T, kube client.Client, name string) *fleetv1.ManagedCluster {
	t.Helper()
	mc := &fleetv1.ManagedCluster{}
	if err := kube.Get(context.Background(), client.ObjectKey{Name: name}, mc); err != nil {
		t.Fatalf("get ManagedCluster %s: %v", name, err)
	}
	return mc
}

func keyHashOf(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	h, err := agentreg.KeyHash(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func parseCertPEM(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM certificate in %q", certPEM)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// joinKeyHash is the hash of the key an agent stored for a join in
// progress, "" while there is none.
func joinKeyHash(stateDir string) string {
	raw, err := os.ReadFile(filepath.Join(stateDir, "credentials", "join.key"))
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return ""
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return ""
	}
	h, _ := agentreg.KeyHash(&key.(*ecdsa.PrivateKey).PublicKey)
	return h
}

// inProcessAgent is the agent's registration run in the test's process,
// on a cluster that states a fixed id.
type inProcessAgent struct {
	agent   *agentreg.Agent
	logs    *lockedBuffer
	cancel  context.CancelFunc
	joined  chan error // Start's result
	stopped chan struct{}
}

func startInProcessAgent(t *testing.T, hubURL, pin, token, name, id, stateDir string) *inProcessAgent {
	t.Helper()
	logs := &lockedBuffer{}
	a, err := agentreg.New(agentreg.Config{
		Hub: hubURL, ClusterName: name, StateDir: stateDir, BootstrapToken: token, CAHash: pin, AgentVersion: "e2e",
		Cluster: fixedCluster{id: id}, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &inProcessAgent{agent: a, logs: logs, cancel: cancel, joined: make(chan error, 1), stopped: make(chan struct{})}
	go func() {
		defer close(p.stopped)
		err := a.Start(ctx)
		p.joined <- err
		if err == nil {
			_ = a.Run(ctx)
		}
	}()
	t.Cleanup(p.stop)
	return p
}

// started waits for Start's result.
func (p *inProcessAgent) started(ctx context.Context) error {
	select {
	case err := <-p.joined:
		p.joined <- err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// mustWait fails the test if the agent's Start has returned.
func (p *inProcessAgent) mustWait(t *testing.T) {
	t.Helper()
	select {
	case err := <-p.joined:
		p.joined <- err
		t.Fatalf("the agent's join ended (%v), want it waiting:\n%s", err, p.logs)
	default:
	}
}

func (p *inProcessAgent) stop() {
	p.cancel()
	<-p.stopped
}

// credentials returns the agent's stored key and certificate.
func (p *inProcessAgent) credentials(t *testing.T) (*ecdsa.PrivateKey, []byte) {
	t.Helper()
	paths := p.agent.Paths()
	keyPEM, err := os.ReadFile(paths.Key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile(paths.Cert)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return key.(*ecdsa.PrivateKey), certPEM
}

func (p *inProcessAgent) keyHash(t *testing.T) string {
	t.Helper()
	key, _ := p.credentials(t)
	return keyHashOf(t, key)
}

type fixedCluster struct{ id string }

func (c fixedCluster) Claims(context.Context) ([]agentapi.Claim, error) {
	return []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: c.id}}, nil
}

func (fixedCluster) Healthy(context.Context) error { return nil }
