package registration

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

// keyAndCSR is a private key and a CSR for it.
type keyAndCSR struct {
	key    *ecdsa.PrivateKey
	keyPEM []byte
	csrPEM string
	// hash is the key's hash as the hub records it (see KeyHash).
	hash string
}

// newKeyAndCSR generates an ECDSA P-256 key and a CSR naming the cluster.
func newKeyAndCSR(clusterName string) (*keyAndCSR, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return csrFor(key, clusterName)
}

// csrFor makes a CSR naming the cluster for an existing key.
func csrFor(key *ecdsa.PrivateKey, clusterName string) (*keyAndCSR, error) {
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
	hash, err := KeyHash(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &keyAndCSR{
		key:    key,
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		csrPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csr})),
		hash:   hash,
	}, nil
}

// parseECKey reads a PEM ECDSA private key (PKCS #8 or SEC 1).
func parseECKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("want an ECDSA key, got %T", key)
	}
	return ec, nil
}

// KeyHash names a public key as the hub records it on the cluster's
// ManagedCluster: "sha256:" and the hex SHA-256 of its DER
// SubjectPublicKeyInfo. An administrator compares it with the hash
// 'fleetpulse hub accept' shows before approving a new key.
func KeyHash(pub crypto.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("encode public key: %w", err)
	}
	sum := sha256.Sum256(spki)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
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
