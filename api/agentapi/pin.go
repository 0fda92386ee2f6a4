package agentapi

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
)

// CAHash is the pin of a CA certificate that join commands carry, as kubeadm
// does: "sha256:" and the hex SHA-256 of the certificate's public key
// (SubjectPublicKeyInfo), so a re-issued CA with the same key keeps its pin.
func CAHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}
