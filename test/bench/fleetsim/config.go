package fleetsim

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Config configures a simulated fleet.
type Config struct {
	// Hub is the base URL of the hub's agent port (https://host:port).
	Hub string
	// RootCAs verify the hub's agent-port certificate.
	RootCAs *x509.CertPool
	// Token is the bootstrap token every cluster registers with; it should
	// auto-accept, or something else must accept the clusters.
	Token string
	// Clusters is how many clusters to simulate, named <Prefix>-<i>.
	Clusters int
	Prefix   string
	// HeartbeatPeriod is used until the hub names one (registration and
	// heartbeat responses carry the period the hub wants).
	HeartbeatPeriod time.Duration
	// CollectionInterval is how often each cluster remote-writes its
	// inventory (the agent's --collection-interval, 30s by default).
	CollectionInterval time.Duration
	// RegisterConcurrency bounds the registration requests in flight.
	RegisterConcurrency int
	// Workers bound the heartbeats and writes in flight in steady state.
	Workers int
	// RequestTimeout bounds one call to the hub.
	RequestTimeout time.Duration
	// AgentVersion is reported in registrations and heartbeats.
	AgentVersion string
	// RecordWrites keeps the timestamp of every acknowledged write of each
	// cluster (AckedWrites), so that a test can check that the hub holds
	// each one; off, a long run's memory stays flat.
	RecordWrites bool
	// Logger gets warnings about failed calls (rate-limited by the caller's
	// handler, if at all); nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns the defaults, with the agent's own periods.
func DefaultConfig() Config {
	return Config{
		Prefix: "sim", Clusters: 1000, HeartbeatPeriod: 30 * time.Second, CollectionInterval: 30 * time.Second,
		RegisterConcurrency: 16, Workers: 64, RequestTimeout: 30 * time.Second, AgentVersion: "fleetsim",
	}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Hub); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("hub %q: want https://host:port", c.Hub))
	}
	if c.RootCAs == nil {
		errs = append(errs, errors.New("root CAs are required to verify the hub"))
	}
	if c.Token == "" {
		errs = append(errs, errors.New("a bootstrap token is required"))
	}
	if c.Clusters < 1 {
		errs = append(errs, fmt.Errorf("clusters must be at least 1, got %d", c.Clusters))
	}
	if msgs := validation.IsDNS1123Label(c.Prefix + "-0"); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("prefix %q does not make DNS-label cluster names: %v", c.Prefix, msgs))
	}
	if c.HeartbeatPeriod <= 0 || c.CollectionInterval <= 0 || c.RequestTimeout <= 0 {
		errs = append(errs, fmt.Errorf("heartbeat period (%s), collection interval (%s) and request timeout (%s) must be positive",
			c.HeartbeatPeriod, c.CollectionInterval, c.RequestTimeout))
	}
	if c.RegisterConcurrency < 1 || c.Workers < 1 {
		errs = append(errs, fmt.Errorf("register concurrency (%d) and workers (%d) must be at least 1", c.RegisterConcurrency, c.Workers))
	}
	return errors.Join(errs...)
}
