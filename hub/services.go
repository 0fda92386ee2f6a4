package hub

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/grafana/dskit/modules"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/features"
	thanosquery "github.com/thanos-io/thanos/pkg/query"

	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/events"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metadata"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/ring"
	"github.com/fleetpulse/fleetpulse/hub/selfmetrics"
	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

// The hub's modules. Each is a dskit service that starts once every module
// it depends on runs, and stops only after every module that depends on it
// has stopped, so no part is closed under a part still using it: the
// servers stop first, then the controllers, rule evaluation, the query
// engine, and the store last.
const (
	// ModuleStore is the metric store (the shard TSDBs and the bucket), the
	// clusters' metadata, events and ingest limits.
	ModuleStore = "store"
	// ModuleQuery is the PromQL engine over the store.
	ModuleQuery = "query"
	// ModuleRules is rule evaluation and sending alerts.
	ModuleRules = "rules"
	// ModuleControllers is the controller manager on the hub's control
	// plane: registration and the controllers acting on the fleet.
	ModuleControllers = "controllers"
	// ModuleAPI is the users' HTTP server: the Prometheus API and the
	// operational endpoints.
	ModuleAPI = "api"
	// ModuleGateway is the agents' HTTPS server: ingest, events and, with a
	// control plane, registration, work and policies.
	ModuleGateway = "gateway"
	// ModuleRing is the replicas' ring (hub/ring): which replicas own a
	// cluster. Without --ring.enabled this hub owns every cluster.
	ModuleRing = "ring"
	// moduleAll names every module the configuration turns on.
	moduleAll = "all"
)

// parts are what the modules build when they start, for the modules that
// depend on them. A module writes its fields in its starting function and
// only its dependents read them, after it runs.
type parts struct {
	// The listeners are bound before any module starts, so that the ring
	// registers the ports they have.
	usersLn, agentLn, grpcLn net.Listener

	ring *ring.Ring

	md          *metadata.Store
	store       *metricstore.Store
	evs         *events.Store
	eventSeries *events.SeriesRecorder
	limiter     *limits.Limiter

	tracker *promql.ActiveQueryTracker
	engine  *promql.Engine
	qopts   query.Options

	alerts *alerting.Alerting
	self   *selfmetrics.Writer

	cp     *controlplane.ControlPlane
	reg    *registration.Service
	agents *gateway.Gateway
	// replicaCAs are the replication CA's certificates, read before the
	// gateway is built; nil when no replicated write is taken.
	replicaCAs []*x509.Certificate

	agentAddr, grpcAddr *net.TCPAddr

	peers      *thanosquery.EndpointSet // nil without peers
	peerAlerts *peerAlerts              // nil without peers
}

// modules registers the hub's modules and their dependencies, as the
// configuration turns them on.
func (h *Hub) modules(p *parts) (*modules.Manager, error) {
	mm := modules.NewManager(kitlog.New(h.logger.With("component", "modules")))
	deps := map[string][]string{
		ModuleQuery: {ModuleStore},
		ModuleRules: {ModuleQuery},
		ModuleAPI:   {ModuleQuery, ModuleRules, ModuleRing},
		// The store reads its peers through the membership, which with
		// --ring.enabled is the ring.
		ModuleStore: {ModuleRing},
	}
	mm.RegisterModule(ModuleRing, func() (services.Service, error) { return h.ringService(p) })
	mm.RegisterModule(ModuleStore, func() (services.Service, error) { return h.storeService(p), nil })
	mm.RegisterModule(ModuleQuery, func() (services.Service, error) { return h.queryService(p), nil })
	mm.RegisterModule(ModuleRules, func() (services.Service, error) { return h.rulesService(p), nil })
	mm.RegisterModule(ModuleAPI, func() (services.Service, error) { return h.apiService(p), nil })
	if h.membership != nil {
		// The queries read the peers once the store has them.
		mm.RegisterModule(ModuleFanout, func() (services.Service, error) { return h.fanoutService(p), nil })
		deps[ModuleFanout] = []string{ModuleStore}
		deps[ModuleQuery] = []string{ModuleStore, ModuleFanout}
	}
	all := []string{ModuleAPI}
	if h.cfg.ControlPlaneKubeconfig != "" {
		mm.RegisterModule(ModuleControllers, func() (services.Service, error) { return h.controllersService(p), nil })
		deps[ModuleControllers] = []string{ModuleStore, ModuleQuery, ModuleRules}
	}
	if h.cfg.AgentListenAddress != "" {
		mm.RegisterModule(ModuleGateway, func() (services.Service, error) { return h.gatewayService(p), nil })
		deps[ModuleGateway] = []string{ModuleStore, ModuleQuery, ModuleRing}
		if h.cfg.ControlPlaneKubeconfig != "" {
			// Registration authenticates agents, and the controllers add
			// their endpoints to the gateway.
			deps[ModuleGateway] = append(deps[ModuleGateway], ModuleControllers)
		}
		all = append(all, ModuleGateway)
	}
	if h.cfg.GRPCListenAddress != "" {
		mm.RegisterModule(ModuleStoreAPI, func() (services.Service, error) { return h.storeAPIService(p), nil })
		deps[ModuleStoreAPI] = []string{ModuleStore}
		if h.membership != nil {
			// Beside the StoreAPI, the Rules API the replicas read each
			// other's alerts through.
			deps[ModuleStoreAPI] = append(deps[ModuleStoreAPI], ModuleRules)
		}
		all = append(all, ModuleStoreAPI)
	}
	mm.RegisterModule(moduleAll, nil)
	deps[moduleAll] = all
	for name, on := range deps {
		if err := mm.AddDependency(name, on...); err != nil {
			return nil, fmt.Errorf("module %s: %w", name, err)
		}
	}
	return mm, nil
}

// storeService opens the store when it starts and closes it when it stops.
func (h *Hub) storeService(p *parts) services.Service {
	return services.NewIdleService(func(context.Context) error {
		// The clusters' remote-written metric metadata, served at /api/v1/metadata.
		md, err := metadata.New(metadata.DefaultLimits(), h.registry)
		if err != nil {
			return err
		}
		opts := []metricstore.Option{metricstore.WithMetadata(md)}
		if h.membership != nil {
			if p.peers, err = h.newPeerSet(); err != nil {
				return err
			}
			opts = append(opts, metricstore.WithRemoteStores(p.peers.GetStoreClients))
		}
		store, err := metricstore.Open(h.cfg.Store, h.logger.With("component", "metricstore"), h.registry, opts...)
		if err != nil {
			return err
		}
		limiter, err := limits.New(limits.Options{File: h.cfg.IngestLimitsFile, Logger: h.logger.With("component", "limits"),
			Registerer: h.registry, HeadSeries: store.HeadSeries})
		if err != nil {
			return errors.Join(err, store.Close())
		}
		p.md, p.store, p.limiter = md, store, limiter
		p.evs = events.NewStore(h.cfg.EventCapacity, h.registry)
		p.eventSeries = events.NewSeriesRecorder(store)
		h.limits.Store(limiter)
		return nil
	}, func(error) error {
		if err := p.store.Close(); err != nil {
			return fmt.Errorf("close metric store: %w", err)
		}
		return nil
	})
}

// queryService builds the PromQL engine over the store; its active query
// log is closed when it stops.
func (h *Hub) queryService(p *parts) services.Service {
	return services.NewIdleService(func(context.Context) error {
		qopts := h.cfg.Query
		qopts.Logger, qopts.Registerer, qopts.Gatherer = h.logger.With("component", "query"), h.registry, h.registry
		qopts.Metadata, qopts.Exemplars, qopts.TSDB, qopts.Retention = p.md, p.store.ExemplarQueryable(), p.store, h.cfg.Store.Retention
		qopts.Features = features.NewRegistry()
		p.tracker = promql.NewActiveQueryTracker(h.cfg.Store.Dir, qopts.MaxConcurrency, qopts.Logger)
		qopts.Tracker = p.tracker
		p.engine, p.qopts = query.NewEngine(qopts), qopts
		return nil
	}, func(error) error {
		return p.tracker.Close()
	})
}

// rulesService evaluates the rules until it stops.
func (h *Hub) rulesService(p *parts) services.Service {
	return services.NewBasicService(func(context.Context) error {
		if h.membership != nil {
			var err error
			if p.peerAlerts, err = h.newPeerAlerts(); err != nil {
				return err
			}
		}
		alerts, err := h.alerting(p.engine, p.store, p.peerAlerts)
		if err != nil {
			return err
		}
		p.alerts = alerts
		h.alerts.Store(alerts)
		// The rollouts' series of the hub's registry, written into its store
		// at the rules' interval for the shipped rules and dashboards.
		p.self, err = selfmetrics.New(selfmetrics.Config{Interval: h.cfg.Alerting.EvaluationInterval,
			Prefixes: []string{"fleetpulse_hub_rollout_"}},
			h.registry, p.store.RoutingAppendable(), h.logger.With("component", "selfmetrics"))
		return err
	}, func(ctx context.Context) error {
		selfDone := make(chan struct{})
		go func() { _ = p.self.Run(ctx); close(selfDone) }()
		defer func() { <-selfDone }()
		return p.alerts.Run(ctx)
	}, func(error) error {
		if p.peerAlerts != nil {
			p.peerAlerts.Close()
		}
		return nil
	})
}

// apiService serves the users' port.
func (h *Hub) apiService(p *parts) services.Service {
	return h.serverService("web", func() (*http.Server, func() error, error) {
		qopts := p.qopts
		qopts.Rules, qopts.Alertmanagers = p.alerts.Retriever(), p.alerts.Alertmanagers()
		if h.membership != nil {
			// Each replica evaluates its own clusters' rules: its alerts
			// and its peers' make the fleet's.
			qopts.Alerts = p.alerts
		}
		srv := h.usersServer(h.usersMux(p, qopts))
		ln := sourceLimit(p.usersLn, "web", h.cfg.Web.MaxConnectionsPerSource, h.webTLS(), h.registry)
		ln = connectionLimit(ln, srv, "web", h.cfg.Web.MaxConnections, h.registry)
		return srv, func() error { return h.serveUsers(ln, srv) }, nil
	})
}

// serverService builds a server when it starts and runs its serve
// function until the service stops, then shuts the server down gracefully:
// in-flight requests complete, within the shutdown timeout, before the
// modules they use stop.
func (h *Hub) serverService(name string, build func() (*http.Server, func() error, error)) services.Service {
	var (
		srv    *http.Server
		serve  func() error
		served = make(chan error, 1)
	)
	return services.NewBasicService(func(context.Context) (err error) {
		srv, serve, err = build()
		return err
	}, func(ctx context.Context) error {
		go func() { served <- serve() }()
		select {
		case err := <-served:
			return fmt.Errorf("serve %s: %w", name, err)
		case <-ctx.Done():
			return nil
		}
	}, func(failure error) error {
		if failure != nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			return fmt.Errorf("shut down the %s server: %w", name, err)
		}
		return nil
	})
}
