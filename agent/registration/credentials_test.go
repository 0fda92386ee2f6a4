package registration

import (
	"crypto/ecdsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// issue returns a key and certificate signed by ca, as the hub would.
func issue(t *testing.T, ca *testbed.CA, name string, ttl time.Duration) (keyPEM, certPEM []byte) {
	t.Helper()
	k, err := newKeyAndCSR(name)
	if err != nil {
		t.Fatal(err)
	}
	_, certPEM, err = ca.Sign(k.key.Public().(*ecdsa.PublicKey), &x509.Certificate{
		Subject: pkix.Name{CommonName: name}, NotBefore: time.Now(), NotAfter: time.Now().Add(ttl),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		t.Fatal(err)
	}
	return k.keyPEM, certPEM
}

func TestCredentialsSaveLoadRemove(t *testing.T) {
	ca := testbed.NewCA(t, "ca")
	state := t.TempDir()
	p := PathsIn(state)
	if HasCredentials(state) {
		t.Fatal("credentials in an empty folder")
	}
	if _, err := p.load(); err == nil {
		t.Fatal("load from an empty folder succeeded")
	}
	for i := range 3 {
		key, cert := issue(t, ca, "c1", time.Hour)
		if err := p.save(key, cert, ca.CertPEM()); err != nil {
			t.Fatalf("save %d: %v", i, err)
		}
		got, err := p.load()
		if err != nil {
			t.Fatalf("load %d: %v", i, err)
		}
		if got.cert.Subject.CommonName != "c1" {
			t.Errorf("loaded %q", got.cert.Subject.CommonName)
		}
		for path, want := range map[string][]byte{p.Key: key, p.Cert: cert, p.CA: ca.CertPEM()} {
			if b, _ := os.ReadFile(path); string(b) != string(want) {
				t.Errorf("save %d: %s holds something else", i, filepath.Base(path))
			}
		}
	}
	if fi, err := os.Stat(p.Key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key: %v, mode %v", err, fi.Mode().Perm())
	}
	if fi, err := os.Stat(p.Dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder: %v, mode %v", err, fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(p.Dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 5 { // ..data, one generation, three links
		t.Errorf("credentials folder holds %v", names)
	}
	if !HasCredentials(state) {
		t.Error("HasCredentials after save = false")
	}
	if err := p.remove(); err != nil {
		t.Fatal(err)
	}
	if HasCredentials(state) {
		t.Error("HasCredentials after remove = true")
	}
}

func TestCredentialsRefuseAMismatchedPair(t *testing.T) {
	ca := testbed.NewCA(t, "ca")
	key, _ := issue(t, ca, "c1", time.Hour)
	_, cert := issue(t, ca, "c1", time.Hour)
	_, err := parseCredentials(key, cert, ca.CertPEM())
	if err == nil {
		t.Fatal("a certificate for another key was taken")
	}
	if strings.Contains(err.Error(), "PRIVATE KEY-----") {
		t.Errorf("the error quotes the key: %v", err)
	}
}
