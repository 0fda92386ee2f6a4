package testbed

import (
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"
)

// CertPEM returns the CA certificate, PEM-encoded.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// Pool returns a pool that trusts the CA only.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// ServerTLS returns a TLS configuration serving a certificate for 127.0.0.1
// and localhost that demands a client certificate issued by the CA; a test
// fails on error.
func (ca *CA) ServerTLS(name string) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{ca.pair(ca.Server(name))},
		ClientCAs:    ca.Pool(), ClientAuth: tls.RequireAndVerifyClientCert,
		MinVersion: tls.VersionTLS12,
	}
}

// ClientTLS returns a TLS configuration that trusts the CA and presents a
// client certificate with commonName, or none when commonName is empty; a
// test fails on error.
func (ca *CA) ClientTLS(commonName string) *tls.Config {
	cfg := &tls.Config{RootCAs: ca.Pool(), MinVersion: tls.VersionTLS12}
	if commonName != "" {
		cfg.Certificates = []tls.Certificate{ca.pair(ca.Client(commonName))}
	}
	return cfg
}

func (ca *CA) pair(certFile, keyFile string) tls.Certificate {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		ca.t.Helper()
		ca.t.Fatal(err)
	}
	return pair
}

// Sign issues a certificate for pub from tmpl, as a hub signs an agent's
// certificate request: the CA fills in the serial number, and the validity
// when tmpl has none. It returns the certificate and its PEM encoding.
func (ca *CA) Sign(pub crypto.PublicKey, tmpl *x509.Certificate) (*x509.Certificate, []byte, error) {
	tmpl.SerialNumber = serial()
	if tmpl.NotAfter.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Minute), time.Now().Add(certLifetime)
	}
	if tmpl.KeyUsage == 0 {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse certificate for %q: %w", tmpl.Subject.CommonName, err)
	}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// Cert returns the CA certificate.
func (ca *CA) Cert() *x509.Certificate { return ca.cert }
