package testbed

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a certificate authority for tests: it issues server certificates for
// loopback and client certificates whose common name is an identity (for
// agents, the cluster's name). Files are PEM, in a test temp dir.
type CA struct {
	// CertFile is the CA certificate, to trust it or to verify clients with.
	CertFile string
	// KeyFile is the CA's private key, for a hub that signs agents'
	// certificates itself (registration).
	KeyFile string
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	dir     string
	t       testing.TB // set by NewCA, for Server and Client
}

// NewCA creates a CA valid for the test's lifetime, in a test temp dir.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	ca, err := NewCAIn(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	ca.t = t
	return ca
}

// NewCAIn creates a CA whose files live in dir (a local fleet's state).
func NewCAIn(dir, name string) (*CA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create CA dir: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(certLifetime),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &CA{CertFile: filepath.Join(dir, name+".crt"), KeyFile: filepath.Join(dir, name+".key"), cert: cert, key: key, dir: dir}
	if err := os.WriteFile(ca.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	if err := os.WriteFile(ca.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	return ca, nil
}

// Server issues a serving certificate for 127.0.0.1 and localhost; a test
// fails on error.
func (ca *CA) Server(name string) (certFile, keyFile string) {
	return ca.must(ca.IssueServer(name))
}

// Client issues a client certificate with the given common name; a test
// fails on error.
func (ca *CA) Client(commonName string) (certFile, keyFile string) {
	return ca.must(ca.IssueClient(commonName))
}

func (ca *CA) must(certFile, keyFile string, err error) (string, string) {
	if err != nil {
		ca.t.Helper()
		ca.t.Fatal(err)
	}
	return certFile, keyFile
}

// IssueServer issues a serving certificate for 127.0.0.1 and localhost.
func (ca *CA) IssueServer(name string) (certFile, keyFile string, err error) {
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	})
}

// IssueClient issues a client certificate with the given common name.
func (ca *CA) IssueClient(commonName string) (certFile, keyFile string, err error) {
	return ca.issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

func (ca *CA) issue(tmpl *x509.Certificate) (string, string, error) {
	tmpl.SerialNumber = serial()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(certLifetime)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	certFile := filepath.Join(ca.dir, tmpl.Subject.CommonName+"-"+tmpl.SerialNumber.String()+".crt")
	keyFile := certFile[:len(certFile)-len(".crt")] + ".key"
	if _, _, err := signLeaf(tmpl, ca.cert, ca.key, certFile, keyFile); err != nil {
		return "", "", fmt.Errorf("issue certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return certFile, keyFile, nil
}
