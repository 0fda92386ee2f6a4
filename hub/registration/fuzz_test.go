package registration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// FuzzGatewayRequests runs what the gateway does with a request body
// before it asks the apiserver anything: decode (the size bound, unknown
// fields), the checks of a registration (validateRegister) and the CSR's
// parsing and signing (CA.Sign, for registrations and renewals); the
// heartbeat's fields are kept as decoded. kind picks the endpoint. Every
// refusal, answered 400 by the gateway, must say what was wrong; nothing
// may panic; and a CSR that is signed yields a certificate for the
// cluster's name and nothing else.
func FuzzGatewayRequests(f *testing.F) {
	files := testbed.NewCA(f, "hub")
	ca, err := LoadCA(files.CertFile, files.KeyFile)
	if err != nil {
		f.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		f.Fatal(err)
	}
	csr := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
	register, _ := json.Marshal(agentapi.RegisterRequest{ClusterName: "east", CSR: csr, AgentVersion: "v1",
		Claims: []agentapi.Claim{{Name: agentapi.ClaimClusterID, Value: "6c3f1e2a-0000-4000-8000-000000000001"}, {Name: agentapi.ClaimPlatform, Value: "kind"}}})
	heartbeat, _ := json.Marshal(agentapi.HeartbeatRequest{AgentVersion: "v1", ClusterAPIReachable: false, ClusterAPIError: "dial tcp: refused",
		Claims: []agentapi.Claim{{Name: "a", Value: "b"}}})
	renew, _ := json.Marshal(agentapi.RenewRequest{CSR: csr})
	for kind, body := range [][]byte{register, heartbeat, renew} {
		f.Add(uint8(kind), body)
		f.Add(uint8(kind), body[:len(body)/2])
	}
	f.Add(uint8(0), []byte(`{"clusterName":"Not_A_Name","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add(uint8(0), []byte(`{"clusterName":"east","csr":"x","claims":[{"name":"id.k8s.io"}],"extra":1}`))
	f.Add(uint8(1), []byte(`{"clusterAPIReachable":"yes"}`))
	f.Add(uint8(2), []byte(`{"csr":`+strings.Repeat(" ", maxGatewayBody)+`""}`))
	f.Add(uint8(2), []byte(``))

	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		w := httptest.NewRecorder()
		refused := func(what string, err error) {
			if msg := strings.TrimSpace(err.Error()); msg == "" {
				t.Fatalf("%s of %q refused without a message", what, body)
			}
		}
		sign := func(csrPEM, name string) {
			cert, _, err := ca.Sign(csrPEM, name, "uid-1", time.Hour, time.Now())
			if err != nil {
				refused("the CSR", err)
				return
			}
			block, _ := pem.Decode(cert)
			if block == nil {
				t.Fatalf("signed %q: not PEM: %q", csrPEM, cert)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				t.Fatalf("signed %q: %v", csrPEM, err)
			}
			if c.Subject.CommonName != name || ClusterUID(c) != "uid-1" || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) > 0 {
				t.Fatalf("signed %q: a certificate for %q (uid %q, SANs %v %v %v), want one for %q alone",
					csrPEM, c.Subject.CommonName, ClusterUID(c), c.DNSNames, c.IPAddresses, c.EmailAddresses, name)
			}
		}
		switch kind % 3 {
		case 0:
			var req agentapi.RegisterRequest
			if err := decode(w, r, &req); err != nil {
				refused("a registration", err)
				return
			}
			if err := validateRegister(req); err != nil {
				refused("a registration", err)
				return
			}
			sign(req.CSR, req.ClusterName)
		case 1:
			var req agentapi.HeartbeatRequest
			if err := decode(w, r, &req); err != nil {
				refused("a heartbeat", err)
			}
		case 2:
			var req agentapi.RenewRequest
			if err := decode(w, r, &req); err != nil {
				refused("a renewal", err)
				return
			}
			sign(req.CSR, "east")
		}
	})
}
