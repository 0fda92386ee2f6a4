package registration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// TestKeyHashMatchesTheAgents: the hub records the hash of a CSR's key as
// the agent logs it, so an administrator can compare the two.
func TestKeyHashMatchesTheAgents(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "c1"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := parseCSR(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})))
	if err != nil {
		t.Fatal(err)
	}
	agents, err := agentreg.KeyHash(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if hub := KeyHash(csr.RawSubjectPublicKeyInfo); hub != agents || !strings.HasPrefix(hub, "sha256:") || len(hub) != len("sha256:")+64 {
		t.Errorf("hub hashes the key %s, the agent %s", hub, agents)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if h, _ := agentreg.KeyHash(&other.PublicKey); h == agents {
		t.Error("two keys hash alike")
	}
	// A CSR signed by another key than the one it names proves nothing.
	tampered := append([]byte(nil), der...)
	tampered[len(tampered)-5] ^= 0xff
	if _, err := parseCSR(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered}))); err == nil {
		t.Error("a CSR with a broken signature was taken")
	}
}

// TestRekeyRequests: a key is listed once however often it asks, the list
// keeps the newest few, and approval makes one listed key the cluster's.
func TestRekeyRequests(t *testing.T) {
	mc := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "east", Annotations: map[string]string{AnnotationKeySHA256: "sha256:old"}}}
	t0 := time.Unix(1_700_000_000, 0).UTC()
	if _, err := ApproveRekey(mc.DeepCopy(), "", t0); err == nil || !strings.Contains(err.Error(), "no pending re-key request") {
		t.Errorf("approve with nothing pending: %v", err)
	}
	req := func(i int) RekeyRequest {
		return RekeyRequest{KeySHA256: "sha256:k" + string(rune('a'+i)), TokenID: "tok" + string(rune('a'+i)), Source: "192.0.2.1", RequestedAt: t0.Add(time.Duration(i) * time.Second)}
	}
	if !addRekeyRequest(mc, req(0)) || addRekeyRequest(mc, req(0)) {
		t.Fatal("a key is not listed exactly once")
	}
	if ap, err := ApproveRekey(mc.DeepCopy(), "", t0); err != nil || ap.KeySHA256 != "sha256:ka" || ap.PreviousKeySHA256 != "sha256:old" {
		t.Errorf("approve the only request: %+v, %v", ap, err)
	}
	for i := 1; i < 8; i++ {
		addRekeyRequest(mc, req(i))
	}
	reqs, err := RekeyRequests(mc)
	if err != nil || len(reqs) != maxRekeyRequests || reqs[0].KeySHA256 != "sha256:kd" || reqs[len(reqs)-1].KeySHA256 != "sha256:kh" {
		t.Fatalf("after 8 keys: %+v, %v; want the newest %d", reqs, err, maxRekeyRequests)
	}
	if _, err := ApproveRekey(mc.DeepCopy(), "", t0); err == nil || !strings.Contains(err.Error(), "--key-sha256") || !strings.Contains(err.Error(), "sha256:kh") {
		t.Errorf("approve one of several without naming it: %v, want an error listing them", err)
	}
	if _, err := ApproveRekey(mc.DeepCopy(), "sha256:ka", t0); err == nil || !strings.Contains(err.Error(), "no re-key request for key sha256:ka") {
		t.Errorf("approve a key no longer listed: %v", err)
	}
	ap, err := ApproveRekey(mc, "sha256:kf", t0.Add(time.Minute))
	if err != nil || ap.TokenID != "tokf" || mc.Annotations[AnnotationKeySHA256] != "sha256:kf" || mc.Annotations[AnnotationRekeyRequests] != "" ||
		!strings.Contains(mc.Annotations[AnnotationRekeyApproved], "sha256:kf") {
		t.Fatalf("approve sha256:kf: %+v, %v; annotations %v", ap, err, mc.Annotations)
	}
	got, ok := takeRekeyApproval(mc)
	if !ok || got.event != eventRekey || got.outcome != outcomeApproved || got.tokenID != "tokf" || got.keySHA256 != "sha256:kf" || !strings.Contains(got.reason, "previous key sha256:old") {
		t.Errorf("the approval's audit: %+v", got)
	}
	if _, ok := mc.Annotations[AnnotationRekeyApproved]; ok {
		t.Error("the approval record stays after it was audited")
	}

	// A key rotated over mutual TLS leaves the list too.
	addRekeyRequest(mc, req(9))
	addRekeyRequest(mc, req(10))
	if !setKey(mc, "sha256:kj") || setKey(mc, "sha256:kj") {
		t.Fatal("setKey does not report exactly one change")
	}
	if reqs, _ := RekeyRequests(mc); len(reqs) != 1 || reqs[0].KeySHA256 != "sha256:kk" {
		t.Errorf("requests after rotating to sha256:kj: %+v", reqs)
	}
}
