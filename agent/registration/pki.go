package registration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// keyAndCSR is a fresh private key and a CSR for it.
type keyAndCSR struct {
	key    *ecdsa.PrivateKey
	keyPEM []byte
	csrPEM string
}

// newKeyAndCSR generates an ECDSA P-256 key and a CSR naming the cluster.
func newKeyAndCSR(clusterName string) (*keyAndCSR, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: clusterName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return &keyAndCSR{
		key:    key,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		csrPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
	}, nil
}

// issued checks a certificate the hub issued for k and returns the parsed
// credentials. caPEM is the bundle to keep; fallbackCA is used when the hub
// sent none.
func (k *keyAndCSR) issued(certPEM, caPEM string, fallbackCA []byte) (*credentials, []byte, error) {
	ca := []byte(caPEM)
	if len(ca) == 0 {
		ca = fallbackCA
	}
	creds, err := parseCredentials(k.keyPEM, []byte(certPEM), ca)
	if err != nil {
		return nil, nil, fmt.Errorf("the hub's answer: %w", err)
	}
	if !k.key.PublicKey.Equal(creds.cert.PublicKey) {
		return nil, nil, errors.New("the hub's answer: the certificate is not for the key the agent sent")
	}
	return creds, ca, nil
}

// pinnedRoots returns the certificates of bundle whose agentapi.CAHash is
// pin. Only those are trusted: a bundle fetched without verification may
// carry more.
func pinnedRoots(bundle []byte, pin string) ([]*x509.Certificate, error) {
	certs, err := pemCerts(bundle)
	if err != nil {
		return nil, err
	}
	var matched []*x509.Certificate
	var seen []string
	for _, c := range certs {
		h := agentapi.CAHash(c)
		if h == pin {
			matched = append(matched, c)
		}
		seen = append(seen, h)
	}
	if len(matched) == 0 {
		return nil, &PinMismatchError{Want: pin, Got: seen}
	}
	return matched, nil
}

// PinMismatchError is returned when the hub's CA does not match
// --hub-ca-hash: the agent is not talking to the hub it was told of, or
// the hash is wrong. The agent never sends its token then.
type PinMismatchError struct {
	Want string
	Got  []string
}

func (e *PinMismatchError) Error() string {
	return fmt.Sprintf("the hub's CA does not match --hub-ca-hash %s (its CA certificates hash to %v): refusing to send the bootstrap token", e.Want, e.Got)
}

// readCAFile reads a PEM bundle; with a pin, the bundle must hold the pinned
// CA and only that is trusted.
func readCAFile(path, pin string) ([]byte, []*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--hub-ca-file: %w", err)
	}
	if pin != "" {
		certs, err := pinnedRoots(data, pin)
		if err != nil {
			return nil, nil, fmt.Errorf("--hub-ca-file %s: %w", path, err)
		}
		return encodeCerts(certs), certs, nil
	}
	certs, err := pemCerts(data)
	if err != nil {
		return nil, nil, fmt.Errorf("--hub-ca-file %s: %w", path, err)
	}
	return data, certs, nil
}

func encodeCerts(certs []*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}
