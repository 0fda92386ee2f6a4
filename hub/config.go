package hub

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/replication"
	"github.com/fleetpulse/fleetpulse/hub/ring"
)

// Config is the hub's configuration. DefaultConfig gives the defaults.
type Config struct {
	// HTTPListenAddress serves users' tools: the Prometheus API and the
	// operational endpoints.
	HTTPListenAddress string
	// Web configures that port: TLS, authentication, limits.
	Web WebConfig
	// AgentListenAddress serves agents over mutual TLS; empty turns it off.
	AgentListenAddress string
	// AgentTLS is the agent listener's certificate and the CA that signs
	// agents' client certificates.
	AgentTLS TLSConfig
	// AgentMaxConnections bounds the agent connections open at once; more
	// wait to be accepted. 0 derives it from the process's open-file limit,
	// keeping what the TSDBs and the hub's other connections need.
	AgentMaxConnections int
	// AgentHandshakeTimeout bounds a new agent connection's TLS handshake and
	// request headers: a connection that sends neither in time is closed,
	// so silent connections cannot hold the limit.
	AgentHandshakeTimeout time.Duration
	// GRPCListenAddress serves Thanos's StoreAPI over the store, for
	// `thanos query`; empty (the default) turns it off: it serves every
	// cluster's series to whoever connects unless GRPCTLS names a client CA.
	GRPCListenAddress string
	// GRPCTLS is the StoreAPI's certificate and the CA of its clients'
	// certificates; empty, it serves plain gRPC.
	GRPCTLS TLSConfig
	// GRPCAdvertiseAddress is the StoreAPI address the other replicas reach
	// this one at, as QueryPeers lists it; empty, the listen address (the
	// host name for one on every interface).
	GRPCAdvertiseAddress string
	// QueryPeers are the StoreAPI addresses of the hub's replicas, this
	// one's among them or not. With them, the replica's queries and rules
	// read the peers' StoreAPIs besides its own store (the fleet), and the
	// replicas split the clusters among them for rule results and alerts
	// (StaticMembership). Membership, set, replaces them.
	QueryPeers []string
	// Membership is the hub's replicas and their clusters (a ring); nil
	// uses QueryPeers.
	Membership Membership
	// PeerTLS is how the replica connects to its peers' StoreAPIs; empty,
	// over plain gRPC.
	PeerTLS PeerTLSConfig
	// PeerRefreshInterval is how often the peers are listed and asked
	// whether they answer.
	PeerRefreshInterval time.Duration
	// MaxRequestBytes bounds one agent request body.
	MaxRequestBytes int64
	// IngestLimitsFile holds the clusters' ingest limits (hub/limits: a
	// default and overrides by cluster); empty, every cluster has
	// limits.DefaultLimits.
	IngestLimitsFile string
	// EventCapacity is how many Kubernetes events the hub keeps, newest first.
	EventCapacity int
	// Store is the metrics storage.
	Store metricstore.Config
	// Query configures PromQL.
	Query query.Options
	// Alerting configures rules and Alertmanager; the shipped rule packs are
	// added to Alerting.RuleFiles unless NoShippedRules.
	Alerting       alerting.Config
	NoShippedRules bool
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
	// ControlPlaneKubeconfig is the hub's Kubernetes control plane, where
	// ManagedClusters and bootstrap tokens live. Set, it turns registration
	// on: agents register with a bootstrap token, get certificates signed by
	// AgentTLS.ClientCAKeyFile, and only registered, accepted clusters may
	// send telemetry. Empty, a client certificate's name alone identifies
	// a cluster (static certificates). controlplane.InCluster uses the
	// pod's service account: the hub runs on its control plane (deploy/hub).
	ControlPlaneKubeconfig string
	// ControlPlane configures the control plane's client when one is set.
	ControlPlane controlplane.Config
	// Registration configures registration when a control plane is set.
	Registration registration.Config
	// Ring is the replicas' ring over memberlist; off, this hub owns every
	// cluster.
	Ring ring.Config
	// Replication is how the owners of a cluster send each other its
	// agents' writes, at a ring replication factor above 1.
	Replication replication.Config
}

// TLSConfig names PEM files. ClientCAKeyFile is the client CA's key, which
// registration signs agents' certificates with.
type TLSConfig struct {
	CertFile, KeyFile, ClientCAFile, ClientCAKeyFile string
}

// PeerTLSConfig names the PEM files of connections to the peers' StoreAPIs:
// the CA their certificates are checked against, the name they are checked
// for (empty: the address's host), and a client certificate for peers that
// require one.
type PeerTLSConfig struct {
	CAFile, CertFile, KeyFile, ServerName string
}

// DefaultConfig returns the hub's defaults: loopback only, so a hub started
// by hand exposes nothing until told to.
func DefaultConfig() Config {
	return Config{
		HTTPListenAddress:     "127.0.0.1:9090",
		Web:                   DefaultWebConfig(),
		AgentListenAddress:    "127.0.0.1:8443",
		MaxRequestBytes:       32 << 20,
		AgentHandshakeTimeout: 10 * time.Second,
		EventCapacity:         100_000,
		Store:                 metricstore.DefaultConfig(),
		Query:                 query.DefaultOptions(),
		Alerting:              alerting.Config{EvaluationInterval: 15 * time.Second},
		ShutdownTimeout:       30 * time.Second,
		PeerRefreshInterval:   5 * time.Second,
		ControlPlane:          controlplane.DefaultConfig(),
		Registration:          registration.DefaultConfig(),
		Ring:                  ring.DefaultConfig(),
		Replication:           replication.DefaultConfig(),
	}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("http listen address %q: %w", c.HTTPListenAddress, err))
	}
	if err := c.Web.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AgentListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.AgentListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("agent listen address %q: %w", c.AgentListenAddress, err))
		}
		if c.AgentTLS.CertFile == "" || c.AgentTLS.KeyFile == "" || c.AgentTLS.ClientCAFile == "" {
			errs = append(errs, errors.New("the agent listener needs a TLS certificate, key and client CA: every agent call is authenticated"))
		}
	}
	if c.GRPCListenAddress != "" {
		if _, _, err := net.SplitHostPort(c.GRPCListenAddress); err != nil {
			errs = append(errs, fmt.Errorf("grpc listen address %q: %w", c.GRPCListenAddress, err))
		}
	}
	if (c.GRPCTLS.CertFile == "") != (c.GRPCTLS.KeyFile == "") || (c.GRPCTLS.ClientCAFile != "" && c.GRPCTLS.CertFile == "") {
		errs = append(errs, errors.New("the StoreAPI's TLS needs a certificate and its key (and a client CA only with them)"))
	}
	if c.Ring.Enabled && len(c.QueryPeers) > 0 {
		errs = append(errs, errors.New("the ring and query peers both name the hub's replicas: give one of them"))
	}
	if len(c.QueryPeers) > 0 || c.Membership != nil || c.Ring.Enabled {
		if c.GRPCListenAddress == "" {
			errs = append(errs, errors.New("hub replicas read each other's StoreAPI: set the grpc listen address with query peers"))
		}
		if c.Store.Replica == "" {
			errs = append(errs, errors.New("hub replicas need each a replica name (--replica.name), which their blocks and series carry"))
		}
		if c.PeerRefreshInterval <= 0 {
			errs = append(errs, fmt.Errorf("peer refresh interval must be positive, got %s", c.PeerRefreshInterval))
		}
	}
	for _, p := range c.QueryPeers {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("query peer %q: want host:port: %w", p, err))
		}
	}
	if (c.PeerTLS.CertFile == "") != (c.PeerTLS.KeyFile == "") || (c.PeerTLS.CertFile != "" && c.PeerTLS.CAFile == "") {
		errs = append(errs, errors.New("the peers' TLS needs a CA, and a client certificate only with its key"))
	}
	if c.AgentMaxConnections < 0 {
		errs = append(errs, fmt.Errorf("agent max connections must not be negative (0 derives it from the open-file limit), got %d", c.AgentMaxConnections))
	}
	if c.AgentListenAddress != "" && c.AgentHandshakeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("agent handshake timeout must be positive, got %s", c.AgentHandshakeTimeout))
	}
	if c.EventCapacity < 1 {
		errs = append(errs, fmt.Errorf("event capacity must be at least 1, got %d", c.EventCapacity))
	}
	if c.MaxRequestBytes <= 0 {
		errs = append(errs, fmt.Errorf("max request bytes must be positive, got %d", c.MaxRequestBytes))
	}
	if c.IngestLimitsFile != "" {
		if _, err := limits.LoadFile(c.IngestLimitsFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.Store.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Alerting.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ControlPlaneKubeconfig != "" {
		if c.AgentListenAddress == "" {
			errs = append(errs, errors.New("registration needs the agent listener: set the agents listen address"))
		}
		if c.AgentTLS.ClientCAKeyFile == "" {
			errs = append(errs, errors.New("registration needs the agents' client CA key (--agents.client-ca-key-file) to sign agents' certificates"))
		}
		if err := c.ControlPlane.Validate(); err != nil {
			errs = append(errs, err)
		}
		if err := c.Registration.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Ring.Enabled && c.AgentListenAddress == "" {
		errs = append(errs, errors.New("the ring needs the agent listener: its replicas own clusters, whose agents they serve"))
	}
	if err := c.Ring.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Replication.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Ring.Enabled && c.Ring.ReplicationFactor > 1 && (!c.Replication.Sends() || c.Replication.ClientCAFile == "") {
		errs = append(errs, fmt.Errorf("at ring replication factor %d every owner of a cluster writes its agents' samples: give each replica a client certificate "+
			"of the replication CA (--replication.tls-cert-file, --replication.tls-key-file) and that CA (--replication.tls-client-ca-file)", c.Ring.ReplicationFactor))
	}
	if c.Replication.ClientCAFile != "" && c.AgentListenAddress == "" {
		errs = append(errs, errors.New("replicated writes are taken on the agents' port: set the agents listen address with --replication.tls-client-ca-file"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
