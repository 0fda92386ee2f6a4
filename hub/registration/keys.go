package registration

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Registration is bound to possession of a key. The ManagedCluster records
// the hash of the public key its agent registered with (a CSR's
// self-signature proves possession of it), and a later registration under
// the same name gets a certificate only for that key, or over mutual TLS
// with the cluster's current certificate. Knowing a valid bootstrap token,
// the name and the id.k8s.io claim (no secret) is not enough to take a
// cluster over: a request with any other key only leaves a re-key request
// for an administrator, and changes nothing else.
const (
	// AnnotationKeySHA256 is the KeyHash of the key the cluster's
	// certificates are issued for.
	AnnotationKeySHA256 = "fleetpulse.io/key-sha256"
	// AnnotationRekeyRequests lists registrations with another key, waiting
	// for an administrator (JSON, []RekeyRequest).
	AnnotationRekeyRequests = "fleetpulse.io/rekey-requests"
	// AnnotationRekeyApproved records an approval until the hub has audited
	// it (JSON, RekeyApproval).
	AnnotationRekeyApproved = "fleetpulse.io/rekey-approved"
	// maxRekeyRequests bounds the list: a flood of keys replaces the oldest
	// requests rather than growing the object.
	maxRekeyRequests = 5
)

// KeyHash names a public key: "sha256:" and the hex SHA-256 of its DER
// SubjectPublicKeyInfo, the form agentapi.CAHash gives CAs. Agents log it,
// so that an administrator can compare it before approving a re-key.
func KeyHash(spki []byte) string {
	sum := sha256.Sum256(spki)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// parseCSR decodes a PEM CSR and checks its self-signature, which proves
// that the requester holds the private key.
func parseCSR(csrPEM string) (*x509.CertificateRequest, error) {
	block, _ := pem.Decode([]byte(csrPEM))
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("csr: want a PEM CERTIFICATE REQUEST")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("csr: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("csr: signature: %w", err)
	}
	return csr, nil
}

// RekeyRequest is a registration under an existing name with a key other
// than the recorded one, by an agent that lost its state or by someone else.
type RekeyRequest struct {
	KeySHA256   string    `json:"keySHA256"`
	TokenID     string    `json:"tokenID"`
	Source      string    `json:"source"`
	RequestedAt time.Time `json:"requestedAt"`
}

// RekeyApproval is an administrator's approval of a RekeyRequest.
type RekeyApproval struct {
	RekeyRequest
	PreviousKeySHA256 string    `json:"previousKeySHA256,omitempty"`
	ApprovedAt        time.Time `json:"approvedAt"`
}

// RekeyRequests returns the cluster's pending re-key requests, oldest first.
func RekeyRequests(mc *fleetv1.ManagedCluster) ([]RekeyRequest, error) {
	raw := mc.Annotations[AnnotationRekeyRequests]
	if raw == "" {
		return nil, nil
	}
	var reqs []RekeyRequest
	if err := json.Unmarshal([]byte(raw), &reqs); err != nil {
		return nil, fmt.Errorf("parse annotation %s of cluster %q: %w", AnnotationRekeyRequests, mc.Name, err)
	}
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].RequestedAt.Before(reqs[j].RequestedAt) })
	return reqs, nil
}

// addRekeyRequest lists req unless its key is listed already (an agent
// polls with the same key, and each poll must not cost a write). It keeps
// the newest maxRekeyRequests. It reports whether mc changed.
func addRekeyRequest(mc *fleetv1.ManagedCluster, req RekeyRequest) bool {
	reqs, err := RekeyRequests(mc)
	if err != nil {
		reqs = nil // unreadable: replaced rather than kept forever
	}
	for _, r := range reqs {
		if r.KeySHA256 == req.KeySHA256 {
			return false
		}
	}
	reqs = append(reqs, req)
	if len(reqs) > maxRekeyRequests {
		reqs = reqs[len(reqs)-maxRekeyRequests:]
	}
	raw, _ := json.Marshal(reqs) // plain strings and times: cannot fail
	if mc.Annotations == nil {
		mc.Annotations = map[string]string{}
	}
	mc.Annotations[AnnotationRekeyRequests] = string(raw)
	return true
}

// ApproveRekey makes the pending request for keySHA256 the cluster's key,
// or the only pending one when keySHA256 is empty, and drops the other
// requests. The hub issues certificates for the approved key from then on.
func ApproveRekey(mc *fleetv1.ManagedCluster, keySHA256 string, now time.Time) (RekeyApproval, error) {
	reqs, err := RekeyRequests(mc)
	if err != nil {
		return RekeyApproval{}, err
	}
	if len(reqs) == 0 {
		return RekeyApproval{}, fmt.Errorf("cluster %q has no pending re-key request", mc.Name)
	}
	var pending []string
	for _, r := range reqs {
		pending = append(pending, r.KeySHA256)
	}
	var chosen *RekeyRequest
	switch {
	case keySHA256 == "" && len(reqs) > 1:
		return RekeyApproval{}, fmt.Errorf("cluster %q has %d re-key requests (keys %s): name the one the agent logged with --key-sha256",
			mc.Name, len(reqs), strings.Join(pending, ", "))
	case keySHA256 == "":
		chosen = &reqs[0]
	default:
		for i := range reqs {
			if reqs[i].KeySHA256 == strings.ToLower(keySHA256) {
				chosen = &reqs[i]
			}
		}
		if chosen == nil {
			return RekeyApproval{}, fmt.Errorf("cluster %q has no re-key request for key %s (pending: %s)", mc.Name, keySHA256, strings.Join(pending, ", "))
		}
	}
	ap := RekeyApproval{RekeyRequest: *chosen, PreviousKeySHA256: mc.Annotations[AnnotationKeySHA256], ApprovedAt: now.UTC().Truncate(time.Second)}
	raw, _ := json.Marshal(ap)
	mc.Annotations[AnnotationKeySHA256] = chosen.KeySHA256
	mc.Annotations[AnnotationRekeyApproved] = string(raw)
	delete(mc.Annotations, AnnotationRekeyRequests)
	return ap, nil
}
