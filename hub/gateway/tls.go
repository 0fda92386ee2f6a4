package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// TLSConfig is the agents' port's TLS: the hub's certificate, and agents'
// client certificates asked for and verified against the client CA when
// given. A call without one is not refused in the handshake but by the
// gateway, with 401 and a message, which says more than a failed
// handshake; routes that serve strangers need the handshake to pass.
// replicaCAs, when given, are trusted in the handshake too, for the hub
// replicas' replicated writes; the gateway tells their certificates from
// agents' by the CA they were verified through (Options.ReplicaCAs).
func TLSConfig(certFile, keyFile, clientCAFile string, replicaCAs ...*x509.Certificate) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("load agent listener certificate: %w", err)
	}
	agentCAs, err := loadCerts(clientCAFile)
	if err != nil {
		return nil, fmt.Errorf("load agent client CA: %w", err)
	}
	pool := x509.NewCertPool()
	for _, ca := range agentCAs {
		for _, r := range replicaCAs {
			if ca.Equal(r) {
				return nil, fmt.Errorf("the replication client CA and the agents' client CA (%q) are one CA %q: a replica's certificate must not be an agent's, give replicas a CA of their own",
					clientCAFile, ca.Subject.CommonName)
			}
		}
		pool.AddCert(ca)
	}
	for _, ca := range replicaCAs {
		pool.AddCert(ca)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.VerifyClientCertIfGiven,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// loadCerts reads the certificates of a PEM file.
func loadCerts(file string) ([]*x509.Certificate, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, raw = pem.Decode(raw)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse a certificate of %q: %w", file, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New(file + " holds no PEM certificate")
	}
	return certs, nil
}
