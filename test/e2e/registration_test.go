package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestRegistrationGateway walks the registration protocol against a real
// hub on a real control plane, speaking the wire format as an agent does:
// tokens (auto-accept, manual, expired, revoked), acceptance, certificates
// bound to the registration, heartbeats driving Available and the managed
// taints, and deregistration refusing the cluster's certificate.
func TestRegistrationGateway(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "reghub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	ca := testbed.NewCA(t, "reg-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 1
		c.Registration.GracePeriods = 2
		c.Registration.InventoryInterval = time.Second
		c.Alerting.EvaluationInterval = time.Second
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	ctx := context.Background()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	tokens := registration.NewTokens(kube, "fleetpulse-system")
	autoTok, _, err := tokens.Create(ctx, registration.TokenOptions{TTL: time.Hour, AutoAccept: true, ClusterSet: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	manualTok, _, _ := tokens.Create(ctx, registration.TokenOptions{TTL: time.Hour})
	expiredTok, _, _ := tokens.Create(ctx, registration.TokenOptions{TTL: time.Millisecond})
	revokedTok, revoked, _ := tokens.Create(ctx, registration.TokenOptions{TTL: time.Hour})
	if err := tokens.Revoke(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	anon := mtlsless(t, ca.CertFile)

	// The CA is served for pinning.
	resp, err := anon.Get(agentsURL + agentapi.PathCA)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := os.ReadFile(ca.CertFile)
	if !bytes.Equal(caPEM, want) {
		t.Errorf("GET %s served %q, want the agents' CA", agentapi.PathCA, caPEM)
	}

	// Refused tokens are refused alike, telling nothing of which token ids
	// exist, and create nothing.
	for tok, why := range map[string]string{expiredTok: "expired", revokedTok: "revoked", "abcdef.0123456789abcdef": "unknown", "junk": "malformed"} {
		code, body, _ := register(t, anon, agentsURL, tok, "bad", "id-bad")
		if code != http.StatusUnauthorized || strings.TrimSpace(body) != "bootstrap token is invalid, expired or revoked" {
			t.Errorf("register with a token that is %s: %d %q, want 401 with the one message for every bad token", why, code, body)
		}
	}
	if err := kube.Get(ctx, client.ObjectKey{Name: "bad"}, &fleetv1.ManagedCluster{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused registration created ManagedCluster bad: %v", err)
	}
	if code, body, _ := register(t, anon, agentsURL, autoTok, "Not_A_Name", "id-x"); code != http.StatusBadRequest || !strings.Contains(body, "clusterName") {
		t.Errorf("register an invalid name: %d %q, want 400 naming clusterName", code, body)
	}

	// An auto-accepting token gets a certificate at once.
	code, body, east := register(t, anon, agentsURL, autoTok, "east", "id-east")
	if code != http.StatusOK || !east.accepted {
		t.Fatalf("register east: %d %s", code, body)
	}
	mc := &fleetv1.ManagedCluster{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "east"}, mc); err != nil || !mc.Spec.Accepted || mc.Labels[fleetv1.LabelClusterSet] != "prod" {
		t.Fatalf("ManagedCluster east: %+v, %v; want accepted, in cluster set prod", mc, err)
	}
	// The token's cluster set counts east as a member.
	if err := kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}); err != nil {
		t.Fatal(err)
	}
	setDeadline := time.Now().Add(30 * time.Second)
	for {
		set := &fleetv1.ClusterSet{}
		if err := kube.Get(ctx, client.ObjectKey{Name: "prod"}, set); err == nil && set.Status.Clusters == 1 {
			break
		}
		if time.Now().After(setDeadline) {
			t.Fatalf("ClusterSet prod: %+v, want 1 cluster", set.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// A second cluster cannot take the name.
	if code, body, _ := register(t, anon, agentsURL, autoTok, "east", "id-impostor"); code != http.StatusConflict || strings.Contains(body, "id-east") {
		t.Errorf("register east from another cluster: %d %q, want 409 that does not tell east's id", code, body)
	}
	// A manual token waits for acceptance; accepting releases the
	// certificate to the key that registered.
	westKey := newKey(t)
	if code, body, west := registerWith(t, anon, agentsURL, manualTok, "west", "id-west", westKey); code != http.StatusOK || west.accepted {
		t.Fatalf("register west: %d %s, want pending", code, body)
	}
	if err := kube.Patch(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "west"}},
		client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"accepted":true}}`))); err != nil {
		t.Fatal(err)
	}
	_, _, west := registerWith(t, anon, agentsURL, manualTok, "west", "id-west", westKey)
	if !west.accepted {
		t.Fatal("west not accepted after the patch")
	}
	tokList, _ := tokens.List(ctx)
	for _, tk := range tokList {
		if strings.HasPrefix(autoTok, tk.ID+".") && tk.UsageCount != 1 {
			t.Errorf("auto token used %d times, want 1 (one cluster created)", tk.UsageCount)
		}
	}

	// Heartbeats make both Available; the heartbeat is a series too.
	eastC, westC := east.client(t, ca.CertFile), west.client(t, ca.CertFile)
	stop := make(chan struct{})
	beating := map[string]*http.Client{"east": eastC, "west": westC}
	reachable := map[string]bool{"east": true, "west": true}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			for name, c := range beating {
				heartbeat(c, agentsURL, reachable[name])
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	waitCondition(t, kube, "east", fleetv1.ConditionAvailable, metav1.ConditionTrue)
	waitCondition(t, kube, "west", fleetv1.ConditionAvailable, metav1.ConditionTrue)
	waitForValue(t, promAPI(t, httpURL), `count(fleetpulse_cluster_heartbeat_timestamp_seconds{cluster=~"east|west"})`, 2)
	p := &cpv1.ClusterProfile{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: "fleetpulse-system", Name: "east"}, p); err != nil || p.Spec.ClusterManager.Name != "fleetpulse" {
		t.Errorf("ClusterProfile of east: %+v, %v", p, err)
	}
	if err := kube.Get(ctx, client.ObjectKey{Name: "east"}, &corev1.Namespace{}); err != nil {
		t.Errorf("namespace of east: %v", err)
	}

	// east's certificate cannot write series for west: a cluster label it
	// sets is replaced by its own.
	if code := writeSpoofed(t, eastC, agentsURL+"/api/v1/write", "west"); code/100 != 2 {
		t.Fatalf("remote write with east's certificate: %d", code)
	}
	waitForValue(t, promAPI(t, httpURL), `count(spoof_probe{cluster="east"})`, 1)
	if v, _, err := promAPI(t, httpURL).Query(ctx, `spoof_probe{cluster="west"}`, time.Now()); err != nil || v.(model.Vector).Len() != 0 {
		t.Errorf("series east labelled cluster=west: %v (%v), want none under west", v, err)
	}

	// A static certificate from the same CA, not issued by registration, is
	// refused, and so is no certificate.
	staticCert, staticKey := ca.Client("east")
	if code := heartbeat(mtlsClient(t, ca.CertFile, staticCert, staticKey), agentsURL, true); code != http.StatusUnauthorized {
		t.Errorf("heartbeat with a certificate not issued by registration: %d, want 401", code)
	}
	if code := heartbeat(anon, agentsURL, true); code != http.StatusUnauthorized {
		t.Errorf("heartbeat without a certificate: %d, want 401", code)
	}

	// west reports its apiserver unreachable: False and tainted unavailable.
	// east goes silent: Unknown and tainted unreachable within grace + period.
	close(stop)
	<-done
	stop, done = make(chan struct{}), make(chan struct{})
	beating = map[string]*http.Client{"west": westC}
	reachable["west"] = false
	go func() {
		defer close(done)
		for {
			heartbeat(westC, agentsURL, false)
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	// The shipped heartbeat alert, mapped to a taint by an AlertTaint rule.
	if err := kube.Create(ctx, &fleetv1.AlertTaint{
		ObjectMeta: metav1.ObjectMeta{Name: "heartbeat-missing"},
		Spec: fleetv1.AlertTaintSpec{AlertName: "FleetpulseClusterHeartbeatMissing",
			Taint: fleetv1.Taint{Key: "fleetpulse.io/heartbeat-alert", Effect: fleetv1.TaintNoSelect}},
	}); err != nil {
		t.Fatal(err)
	}
	silentSince := time.Now()
	waitCondition(t, kube, "east", fleetv1.ConditionAvailable, metav1.ConditionUnknown)
	t.Logf("east Unknown %s after its last heartbeat (grace 2s + period 1s)", time.Since(silentSince).Round(100*time.Millisecond))
	waitTaint(t, kube, "east", fleetv1.TaintUnreachable)
	waitTaint(t, kube, "east", "fleetpulse.io/heartbeat-alert")
	at := &fleetv1.AlertTaint{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "heartbeat-missing"}, at); err != nil || at.Status.TaintedClusters != 1 ||
		at.Status.Clusters[0].Cluster != "east" || at.Status.Clusters[0].AlertLabels["alertname"] != "FleetpulseClusterHeartbeatMissing" {
		t.Errorf("AlertTaint status: %+v (%v), want east tainted, naming the alert", at.Status, err)
	}
	waitCondition(t, kube, "west", fleetv1.ConditionAvailable, metav1.ConditionFalse)
	waitTaint(t, kube, "west", fleetv1.TaintUnavailable)
	close(stop)
	<-done

	// A refused write counts against east's limits; that state goes with
	// its registration.
	if code := writeSpoofed(t, eastC, agentsURL+"/api/v1/write", strings.Repeat("x", 3<<10)); code != http.StatusBadRequest {
		t.Errorf("a write with a 3 KiB label value = %d, want 400 (label_value_length)", code)
	}
	eastLimited := `fleetpulse_hub_ingest_limited_total{cluster="east",limit="label_value_length"}`
	waitHubMetric(t, httpURL, eastLimited, true)

	// Deleting east deregisters it: its certificate is refused, flagged so
	// the agent stops, its namespace goes, and so does what the hub kept
	// of it.
	if err := kube.Delete(ctx, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, agentsURL+agentapi.PathHeartbeat, strings.NewReader(`{"clusterAPIReachable":true}`))
		resp, err := eastC.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden && resp.Header.Get(agentapi.HeaderDeregister) == "true" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("east's certificate still accepted 30s after deletion (%v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for {
		ns := &corev1.Namespace{}
		err := kube.Get(ctx, client.ObjectKey{Name: "east"}, ns)
		if apierrors.IsNotFound(err) || (err == nil && ns.DeletionTimestamp != nil) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("namespace east not deleted: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	waitHubMetric(t, httpURL, eastLimited, false)
}

// waitHubMetric waits until the hub's /metrics holds a line starting with
// prefix, or holds none.
func waitHubMetric(t *testing.T, httpURL, prefix string, present bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(httpURL + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			found := false
			for _, line := range strings.Split(string(body), "\n") {
				found = found || strings.HasPrefix(line, prefix)
			}
			if found == present {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hub's /metrics: line %s present = %v after 30s, want %v (%v)", prefix, !present, present, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type registered struct {
	accepted bool
	keyPEM   []byte
	certPEM  []byte
}

// client returns an mTLS client holding the registered certificate.
func (r registered) client(t *testing.T, caFile string) *http.Client {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	_ = os.WriteFile(cert, r.certPEM, 0o600)
	_ = os.WriteFile(key, r.keyPEM, 0o600)
	return mtlsClient(t, caFile, cert, key)
}

func register(t *testing.T, c *http.Client, base, token, name, clusterID string) (int, string, registered) {
	t.Helper()
	return registerWith(t, c, base, token, name, clusterID, newKey(t))
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// registerWith registers with a CSR for key, as an agent does.
func registerWith(t *testing.T, c *http.Client, base, token, name, clusterID string, key *ecdsa.PrivateKey) (int, string, registered) {
	t.Helper()
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(agentapi.RegisterRequest{
		ClusterName: name, CSR: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER})),
		Claims: []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: clusterID}},
	})
	req, _ := http.NewRequest(http.MethodPost, base+agentapi.PathRegister, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out agentapi.RegisterResponse
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("register response %q: %v", raw, err)
		}
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return resp.StatusCode, string(raw), registered{
		accepted: out.Accepted && out.Certificate != "",
		keyPEM:   pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		certPEM:  []byte(out.Certificate),
	}
}

func heartbeat(c *http.Client, base string, reachable bool) int {
	body, _ := json.Marshal(agentapi.HeartbeatRequest{ClusterAPIReachable: reachable, ClusterAPIError: map[bool]string{false: "dial tcp: connection refused"}[reachable]})
	resp, err := c.Post(base+agentapi.PathHeartbeat, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// mtlsless is a client that trusts the hub but has no certificate.
func mtlsless(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func waitCondition(t *testing.T, kube client.Client, name, typ string, want metav1.ConditionStatus) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mc := &fleetv1.ManagedCluster{}
		err := kube.Get(context.Background(), client.ObjectKey{Name: name}, mc)
		c := meta.FindStatusCondition(mc.Status.Conditions, typ)
		if err == nil && c != nil && c.Status == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ManagedCluster %s: condition %s is %+v (err %v), want %s within 30s", name, typ, c, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitTaint(t *testing.T, kube client.Client, name, key string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mc := &fleetv1.ManagedCluster{}
		_ = kube.Get(context.Background(), client.ObjectKey{Name: name}, mc)
		for _, tn := range mc.Spec.Taints {
			if tn.Key == key {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ManagedCluster %s: taints %+v, want %s within 30s", name, mc.Spec.Taints, key)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func promAPI(t *testing.T, url string) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

// writeSpoofed remote-writes one series claiming cluster=claimed.
func writeSpoofed(t *testing.T, c *http.Client, url, claimed string) int {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "spoof_probe"}, {Name: "cluster", Value: claimed}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: time.Now().UnixMilli()}},
	}}}
	raw, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(snappy.Encode(nil, raw)))
	hr.Header.Set("Content-Encoding", "snappy")
	hr.Header.Set("Content-Type", "application/x-protobuf")
	hr.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
