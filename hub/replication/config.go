package replication

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"
)

// Config is how a replica sends and takes replicated writes.
type Config struct {
	// CertFile and KeyFile are this replica's client certificate, issued by
	// the replication CA, which it presents to the other owners.
	CertFile, KeyFile string
	// CAFile is the CA of the other replicas' agents' serving certificates;
	// empty: the system's roots.
	CAFile string
	// ServerName is the name those certificates are checked for; empty:
	// the host of the replica's address in the ring.
	ServerName string
	// ClientCAFile is the replication CA: a replicated write is taken only
	// from a client certificate it issued. Empty: none is taken.
	ClientCAFile string
	// Timeout bounds one replicated write.
	Timeout time.Duration
}

// DefaultConfig is replication closed: nothing sent, nothing taken.
func DefaultConfig() Config { return Config{Timeout: 5 * time.Second} }

// Sends reports whether this replica can send replicated writes.
func (c Config) Sends() bool { return c.CertFile != "" }

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("replication needs both a client certificate and its key (--replication.tls-cert-file, --replication.tls-key-file)"))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("replication timeout must be positive, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// clientTLS is the TLS of replicated writes: this replica's certificate
// and the CA of its peers' serving certificates.
func (c Config) clientTLS() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load replication client certificate: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read replication CA: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("replication CA %q holds no PEM certificate", c.CAFile)
		}
	}
	return cfg, nil
}
