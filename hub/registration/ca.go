package registration

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// CA signs agents' client certificates. The certificate names the cluster
// (common name) and the ManagedCluster's UID (a URI SAN), so that a
// certificate of a deleted cluster stays refused even if a cluster of the
// same name registers again.
type CA struct {
	Cert    *x509.Certificate
	CertPEM []byte
	key     crypto.Signer
}

// LoadCA reads a PEM certificate and its PEM private key.
func LoadCA(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("CA certificate %s holds no PEM certificate", certFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CA certificate %s: %w", certFile, err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("CA key %s holds no PEM block", keyFile)
	}
	var key any
	switch kb.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse CA key %s: %w", keyFile, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("CA key %s cannot sign", keyFile)
	}
	return &CA{Cert: cert, CertPEM: certPEM, key: signer}, nil
}

// clusterURI is the SAN that binds a certificate to one ManagedCluster.
func clusterURI(name string, uid types.UID) *url.URL {
	return &url.URL{Scheme: "urn", Opaque: "fleetpulse:cluster:" + name + ":" + string(uid)}
}

// ClusterUID returns the ManagedCluster UID a certificate was issued for,
// or "" for a certificate not issued by registration.
func ClusterUID(cert *x509.Certificate) types.UID {
	for _, u := range cert.URIs {
		if u.Scheme != "urn" {
			continue
		}
		rest, ok := strings.CutPrefix(u.Opaque, "fleetpulse:cluster:"+cert.Subject.CommonName+":")
		if ok {
			return types.UID(rest)
		}
	}
	return ""
}

// Sign issues a client certificate for the CSR's key, valid for ttl, naming
// cluster name and uid. The CSR's own subject is ignored: the hub decides.
func (ca *CA) Sign(csrPEM, name string, uid types.UID, ttl time.Duration, now time.Time) ([]byte, time.Time, error) {
	csr, err := parseCSR(csrPEM)
	if err != nil {
		return nil, time.Time{}, err
	}
	return ca.signCSR(csr, name, uid, ttl, now)
}

// signCSR is Sign for a CSR parsed and checked by parseCSR.
func (ca *CA) signCSR(csr *x509.CertificateRequest, name string, uid types.UID, ttl time.Duration, now time.Time) ([]byte, time.Time, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, time.Time{}, err
	}
	notAfter := now.Add(ttl)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name, Organization: []string{"fleetpulse:clusters"}},
		URIs:         []*url.URL{clusterURI(name, uid)},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.key)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sign certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), notAfter, nil
}
