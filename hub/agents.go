package hub

import (
	"crypto/tls"
	"net/http"

	"github.com/grafana/dskit/services"

	"github.com/fleetpulse/fleetpulse/hub/events"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/ingest"
	"github.com/fleetpulse/fleetpulse/hub/replication"
)

// newAgents builds the agents' gateway over auth. An agent whose cluster
// another replica owns is redirected there (hub/ring).
func (h *Hub) newAgents(p *parts, auth gateway.Authenticator) *gateway.Gateway {
	return gateway.New(gateway.Options{Authenticator: auth, Ready: h.ready.Load, Limits: p.limiter, Owner: p.owner,
		ReplicaCAs: p.replicaCAs, Logger: h.logger.With("component", "gateway"), Registerer: h.registry})
}

// loadReplicaCAs reads the replication CA, whose client certificates are
// the other replicas' (--replication.tls-client-ca-file), before the
// gateway is built.
func (h *Hub) loadReplicaCAs(p *parts) error {
	if h.cfg.Replication.ClientCAFile == "" {
		return nil
	}
	var err error
	p.replicaCAs, err = gateway.LoadReplicaCAs(h.cfg.Replication.ClientCAFile)
	return err
}

// writeHandler is the agents' remote-write handler: the ingest handler,
// behind a Replicator that writes to every owner of the cluster when the
// ring gives clusters several.
func (h *Hub) writeHandler(p *parts, ingestHandler http.Handler) (http.Handler, error) {
	if p.ring.ReplicationFactor() < 2 {
		return ingestHandler, nil
	}
	return replication.New(h.cfg.Replication, replication.Options{Local: ingestHandler, Ring: p.ring, MaxRequestBytes: h.cfg.MaxRequestBytes,
		Logger: h.logger.With("component", "replication"), Registerer: h.registry})
}

// gatewayService serves the agents' port: ingest and events into the
// store, and whatever the controllers added to the gateway. Without a
// control plane a static certificate's name is the cluster.
func (h *Hub) gatewayService(p *parts) services.Service {
	return h.serverService("agent", func() (*http.Server, func() error, error) {
		tlsCfg, err := gateway.TLSConfig(h.cfg.AgentTLS.CertFile, h.cfg.AgentTLS.KeyFile, h.cfg.AgentTLS.ClientCAFile, p.replicaCAs...)
		if err != nil {
			return nil, nil, err
		}
		if p.agents == nil {
			p.agents = h.newAgents(p, gateway.CommonName)
		}
		agents := p.agents
		h.probes(agents)
		ingestHandler := ingest.NewHandler(p.store, ingest.Options{
			MaxRequestBytes: h.cfg.MaxRequestBytes, Logger: h.logger.With("component", "ingest"), Registerer: h.registry, Limits: p.limiter,
		})
		write, err := h.writeHandler(p, ingestHandler)
		if err != nil {
			return nil, nil, err
		}
		agents.Handle("/api/v1/write", write, gateway.RateLimited())
		if len(p.replicaCAs) > 0 {
			// The other owners' replicated writes: the same handler and
			// limits, never replicated again.
			agents.Handle(http.MethodPost+" "+replication.Path, ingestHandler, gateway.Replica(), gateway.RateLimited())
		}
		agents.Handle("/v1/logs", events.NewIngestHandler(p.evs, p.eventSeries, h.cfg.MaxRequestBytes))
		ln := p.agentLn
		srv := &http.Server{Handler: agents, TLSConfig: tlsCfg, ErrorLog: h.errorLog(),
			// A connection holds one of maxConns from its accept: one that
			// does not complete its handshake and headers in time is closed,
			// and one an agent leaves idle longer than any heartbeat period
			// is too.
			ReadHeaderTimeout: h.cfg.AgentHandshakeTimeout, IdleTimeout: agentIdleTimeout}
		maxConns := agentConnectionLimit(h.cfg.AgentMaxConnections, h.cfg.Store.Shards)
		limited := connectionLimit(ln, srv, "agent", maxConns, h.registry)
		tlsLn := tls.NewListener(limited, tlsCfg)
		return srv, func() error { return srv.Serve(tlsLn) }, nil
	})
}
