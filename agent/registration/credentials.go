package registration

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Paths are the files in which the agent keeps the credentials the hub
// issued: its private key, its client certificate and the CA bundle that
// verifies the hub. The Collector's exporter reads them too.
type Paths struct {
	Dir, Key, Cert, CA string
}

// The layout of the credentials folder. Key, certificate and CA bundle live
// in a generation folder; dataLink points at the current one and the file
// names are links through it, so that replacing the credentials is one
// rename of dataLink (the layout of Kubernetes' projected volumes): a crash
// never leaves a new certificate beside an old key, and a reader that opens
// both files between two renewals gets a matching pair.
const (
	dataLink   = "..data"
	genPrefix  = "..gen-"
	keyName    = "tls.key"
	certName   = "tls.crt"
	caName     = "ca.crt"
	tmpLinkSfx = ".tmp"
)

// PathsIn returns the credential paths under a state folder.
func PathsIn(stateDir string) Paths {
	dir := filepath.Join(stateDir, "credentials")
	return Paths{Dir: dir, Key: filepath.Join(dir, keyName), Cert: filepath.Join(dir, certName), CA: filepath.Join(dir, caName)}
}

// HasCredentials reports whether stateDir holds credentials, valid or not
// (a broken link counts: Start then says what is wrong with them).
func HasCredentials(stateDir string) bool {
	_, err := os.Lstat(PathsIn(stateDir).Cert)
	return err == nil
}

// credentials are a key, its certificate and the hub's CA bundle, parsed.
type credentials struct {
	cert    *x509.Certificate
	tlsCert tls.Certificate
	roots   *x509.CertPool
	caPEM   []byte
}

// errNoCredentials is wrapped when the folder holds no credentials.
var errNoCredentials = errors.New("no credentials")

// load reads and checks the stored credentials.
func (p Paths) load() (*credentials, error) {
	certPEM, err := os.ReadFile(p.Cert)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s", errNoCredentials, p.Dir)
	}
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(p.Key)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	caPEM, err := os.ReadFile(p.CA)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	return parseCredentials(keyPEM, certPEM, caPEM)
}

// parseCredentials checks that the certificate is for the key and that the
// bundle holds certificates. Errors never quote the key.
func parseCredentials(keyPEM, certPEM, caPEM []byte) (*credentials, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// X509KeyPair's errors name PEM block types and mismatches, never the key.
		return nil, fmt.Errorf("certificate and key: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("CA bundle holds no PEM certificate")
	}
	return &credentials{cert: pair.Leaf, tlsCert: pair, roots: roots, caPEM: caPEM}, nil
}

// save replaces the stored credentials at once: the files are written into
// a new generation folder, then dataLink is renamed to point at it.
func (p Paths) save(keyPEM, certPEM, caPEM []byte) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create credentials folder: %w", err)
	}
	gen, err := os.MkdirTemp(p.Dir, genPrefix+time.Now().UTC().Format("20060102T150405")+"-")
	if err != nil {
		return fmt.Errorf("create credentials folder: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(gen)
		}
	}()
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{keyName, keyPEM, 0o600}, {certName, certPEM, 0o644}, {caName, caPEM, 0o644}} {
		if err := writeSynced(filepath.Join(gen, f.name), f.data, f.mode); err != nil {
			return err
		}
	}
	if err := syncDir(gen); err != nil {
		return err
	}
	tmp := filepath.Join(p.Dir, dataLink+tmpLinkSfx)
	_ = os.Remove(tmp)
	if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
		return fmt.Errorf("link credentials: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(p.Dir, dataLink)); err != nil {
		return fmt.Errorf("switch credentials: %w", err)
	}
	ok = true
	for _, name := range []string{keyName, certName, caName} {
		link := filepath.Join(p.Dir, name)
		target := filepath.Join(dataLink, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		// A regular file or a wrong link is replaced, again by a rename.
		_ = os.Remove(link + tmpLinkSfx)
		if err := os.Symlink(target, link+tmpLinkSfx); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
		if err := os.Rename(link+tmpLinkSfx, link); err != nil {
			return fmt.Errorf("link %s: %w", name, err)
		}
	}
	if err := syncDir(p.Dir); err != nil {
		return err
	}
	// Earlier generations are unreachable now.
	entries, _ := os.ReadDir(p.Dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), genPrefix) && e.Name() != filepath.Base(gen) {
			_ = os.RemoveAll(filepath.Join(p.Dir, e.Name()))
		}
	}
	return nil
}

// joinKeyName holds the key of a join in progress, written before the hub
// first sees it: a restart while the hub keeps the cluster waiting (for
// acceptance, or for an administrator to approve the key) asks again with
// the same key, the one the administrator was shown.
const joinKeyName = "join.key"

func (p Paths) joinKey() string { return filepath.Join(p.Dir, joinKeyName) }

// saveJoinKey stores the join key at once: written aside, then renamed.
func (p Paths) saveJoinKey(keyPEM []byte) error {
	if err := os.MkdirAll(p.Dir, 0o700); err != nil {
		return fmt.Errorf("create credentials folder: %w", err)
	}
	tmp := p.joinKey() + tmpLinkSfx
	_ = os.Remove(tmp)
	if err := writeSynced(tmp, keyPEM, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, p.joinKey()); err != nil {
		return fmt.Errorf("store %s: %w", joinKeyName, err)
	}
	return syncDir(p.Dir)
}

// removeJoinKey drops the join key once credentials for it are stored.
func (p Paths) removeJoinKey() error {
	if err := os.Remove(p.joinKey()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", joinKeyName, err)
	}
	return nil
}

// remove deletes the credentials folder.
func (p Paths) remove() error {
	if err := os.RemoveAll(p.Dir); err != nil {
		return fmt.Errorf("remove credentials: %w", err)
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// pemCerts returns the certificates of a PEM bundle.
func pemCerts(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := bytes.TrimSpace(data); len(rest) > 0; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}
