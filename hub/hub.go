package hub

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prometheus/prometheus/promql"

	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/events"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/ring"
	"github.com/fleetpulse/fleetpulse/rules"
)

// Hub is one hub process. New builds it; Run serves until its context ends.
type Hub struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	ready    atomic.Bool

	httpAddr, agentAddr, grpcAddr atomic.Pointer[net.TCPAddr]
	// boundAddr is the users' listener's address from its bind on, which
	// alerts link back to before the hub is ready.
	boundAddr atomic.Pointer[net.TCPAddr]
	// alerts is rule evaluation, which the control-plane controllers act on.
	alerts atomic.Pointer[alerting.Alerting]
	// manager is the controllers' manager once it runs.
	manager atomic.Pointer[controlplane.ControlPlane]
	// limits are the clusters' ingest limits, which Reload reads again.
	limits atomic.Pointer[limits.Limiter]
	// membership is the hub's replicas; nil for a hub without peers.
	membership Membership
	// ring is the replicas' ring (hub/ring) once its module runs.
	ring atomic.Pointer[ring.Ring]
}

// New builds a hub from a valid configuration. It starts nothing.
func New(cfg Config, logger *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid hub configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Lines logged with an agent request's context name its request ID.
	logger = slog.New(gateway.LogHandler(logger.Handler()))
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("fleetpulse_hub"),
	)
	h := &Hub{cfg: cfg, logger: logger, registry: reg, membership: cfg.Membership}
	if h.membership == nil && cfg.Ring.Enabled {
		h.membership = ringMembership{h}
	}
	if h.membership == nil && len(cfg.QueryPeers) > 0 {
		self, err := advertiseAddress(cfg.GRPCAdvertiseAddress, cfg.GRPCListenAddress)
		if err != nil {
			return nil, err
		}
		h.membership = NewStaticMembership(self, cfg.QueryPeers)
	}
	return h, nil
}

// Registry is where the hub's parts register their metrics.
func (h *Hub) Registry() prometheus.Registerer { return h.registry }

// Addr returns the HTTP listener's address once the hub is ready, else nil.
func (h *Hub) Addr() *net.TCPAddr { return h.httpAddr.Load() }

// AgentAddr returns the agent listener's address once the hub is ready,
// else nil.
func (h *Hub) AgentAddr() *net.TCPAddr { return h.agentAddr.Load() }

// LeadsControllers reports whether this hub runs the control-plane
// controllers: it holds their Lease, or leader election is off.
func (h *Hub) LeadsControllers() bool {
	cp := h.manager.Load()
	return cp != nil && cp.Leading()
}

// GRPCAddr returns the StoreAPI listener's address once the hub is ready,
// else nil (also when it serves none).
func (h *Hub) GRPCAddr() *net.TCPAddr { return h.grpcAddr.Load() }

// Ready reports whether the hub serves every part, as /-/ready does.
func (h *Hub) Ready() bool { return h.ready.Load() }

// Run starts the hub's modules in dependency order (store, query, rules,
// controllers, servers), serves until ctx is cancelled or a module fails,
// then stops them in reverse order, each within the shutdown timeout:
// servers first, so in-flight requests complete, then the controllers and
// rule evaluation, which query the store, and the store last.
func (h *Hub) Run(ctx context.Context) error {
	// Bound before the rules are loaded: alerts link back to its address.
	usersLn, err := h.listen(h.cfg.HTTPListenAddress)
	if err != nil {
		return err
	}
	defer usersLn.Close() // when the users' server never started
	h.boundAddr.Store(usersLn.Addr().(*net.TCPAddr))
	p := &parts{usersLn: usersLn}
	if err := h.loadReplicaCAs(p); err != nil {
		return err
	}
	if err := h.listenServers(p); err != nil {
		return err
	}
	defer p.closeListeners() // when their servers never started
	mm, err := h.modules(p)
	if err != nil {
		return err
	}
	svcs, err := mm.InitModuleServices(moduleAll)
	if err != nil {
		return fmt.Errorf("build the hub's modules: %w", err)
	}
	all := make([]services.Service, 0, len(svcs))
	for _, s := range svcs {
		all = append(all, s)
	}
	mgr, err := services.NewManager(all...)
	if err != nil {
		return fmt.Errorf("manage the hub's modules: %w", err)
	}
	failures := services.NewFailureWatcher()
	failures.WatchManager(mgr)
	if err := mgr.StartAsync(context.Background()); err != nil {
		return fmt.Errorf("start the hub's modules: %w", err)
	}
	if err = mgr.AwaitHealthy(ctx); err == nil {
		h.ready.Store(true)
		// Published once ready: the gateway answers 503 until then.
		h.httpAddr.Store(h.boundAddr.Load())
		if p.agentAddr != nil {
			h.agentAddr.Store(p.agentAddr)
		}
		if p.grpcAddr != nil {
			h.grpcAddr.Store(p.grpcAddr)
		}
		// An owner, and read by its peers, only now that it serves.
		if r := h.ring.Load(); r != nil {
			err = r.Activate(ctx)
		}
	}
	if err == nil {
		h.logger.Info("hub ready", "http", h.Addr(), "external_url", h.externalURL(), "web_config", h.cfg.Web.ConfigFile != "",
			"agents", h.AgentAddr(), "grpc", h.GRPCAddr(), "agent_connection_limit", agentConnectionLimit(h.cfg.AgentMaxConnections, h.cfg.Store.Shards))
		if p.grpcAddr != nil && h.cfg.GRPCTLS.ClientCAFile == "" && !isLoopback(p.grpcAddr) {
			h.logger.Warn("the StoreAPI serves every cluster's series without client certificates on a non-loopback address: give it a client CA (--grpc.tls-client-ca-file)",
				"grpc", p.grpcAddr)
		}
		if h.cfg.Web.ConfigFile == "" && !isLoopback(usersLn.Addr()) {
			h.logger.Warn("the users' port serves without TLS or authentication on a non-loopback address: give it a web config file (--web.config.file)",
				"http", h.Addr())
		}
		select {
		case err = <-failures.Chan():
		case <-ctx.Done():
		}
	}
	stoppedStarting := err != nil && ctx.Err() != nil
	h.ready.Store(false)
	h.logger.Info("hub shutting down", "timeout", h.cfg.ShutdownTimeout)
	mgr.StopAsync()
	_ = mgr.AwaitStopped(context.Background())
	// Every module's failure, in dependency order.
	var errs []error
	for _, name := range []string{ModuleGateway, ModuleAPI, ModuleStoreAPI, ModuleRing, ModuleControllers, ModuleRules, ModuleQuery, ModuleStore} {
		if s := svcs[name]; s != nil && s.FailureCase() != nil && !(stoppedStarting && errors.Is(s.FailureCase(), context.Canceled)) {
			errs = append(errs, s.FailureCase())
		}
	}
	if len(errs) > 0 || stoppedStarting {
		return errors.Join(errs...)
	}
	return err
}

// Reload reads the rule files and the ingest limits file again, as
// Prometheus reloads on SIGHUP and POST /-/reload; a bad file keeps what
// was loaded from it.
func (h *Hub) Reload() error {
	alerts, lim := h.alerts.Load(), h.limits.Load()
	if alerts == nil || lim == nil {
		return errors.New("the hub is not running")
	}
	return errors.Join(alerts.Reload(), lim.Reload())
}

// alerting builds rule evaluation over the fleet, with the shipped packs
// written into the store's folder so they load like any rule file.
func (h *Hub) alerting(engine *promql.Engine, store *metricstore.Store, peers *peerAlerts) (*alerting.Alerting, error) {
	cfg := h.cfg.Alerting
	if !h.cfg.NoShippedRules {
		shipped, err := rules.WriteTo(filepath.Join(h.cfg.Store.Dir, metricstore.ShippedRulesDir))
		if err != nil {
			return nil, err
		}
		cfg.RuleFiles = append(shipped, cfg.RuleFiles...)
	}
	cfg.ExternalURL = h.externalURL()
	var opts []alerting.Option
	if h.membership != nil {
		opts = append(opts, alerting.WithPartition(metricstore.ClusterLabel, h.membership.Owns, h.leadsFleet),
			alerting.WithPeerAlerts(peers.Alerts))
	}
	return alerting.New(cfg, engine, store.Queryable(), store.RoutingAppendable(), h.logger.With("component", "alerting"), h.registry, opts...)
}

func (h *Hub) operational(mux *http.ServeMux) {
	mux.Handle("GET /metrics", promhttp.HandlerFor(h.registry, promhttp.HandlerOpts{Registry: h.registry}))
	h.health(mux)
}

// health serves /-/healthy and /-/ready on the users' port.
func (h *Hub) health(mux *http.ServeMux) {
	mux.HandleFunc("GET /-/healthy", h.healthy)
	mux.HandleFunc("GET /-/ready", h.readiness)
}

// probes serves /-/healthy and /-/ready on the agents' port too, without
// credentials and before the hub is ready, so that probes work when the
// users' port requires authentication.
func (h *Hub) probes(agents *gateway.Gateway) {
	agents.HandleFunc("GET /-/healthy", h.healthy, gateway.Probe())
	agents.HandleFunc("GET /-/ready", h.readiness, gateway.Probe())
}

func (h *Hub) healthy(w http.ResponseWriter, _ *http.Request) {
	fmt.Fprintln(w, "Fleetpulse hub is Healthy.")
}

func (h *Hub) readiness(w http.ResponseWriter, _ *http.Request) {
	if !h.ready.Load() {
		http.Error(w, "Fleetpulse hub is not ready.", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "Fleetpulse hub is Ready.")
}

// agentIdleTimeout closes an agent connection left idle this long: longer
// than heartbeat periods are, so a heartbeating agent keeps its connection.
const agentIdleTimeout = 5 * time.Minute

// userReadHeaderTimeout bounds the request headers of users' clients.
const userReadHeaderTimeout = 30 * time.Second

// listen binds addr.
func (h *Hub) listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	return ln, nil
}

// errorLog is where the HTTP servers log what they cannot answer.
func (h *Hub) errorLog() *log.Logger { return slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn) }

// usersServer serves handler on the users' port.
func (h *Hub) usersServer(handler http.Handler) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: userReadHeaderTimeout,
		ReadTimeout:       h.cfg.Web.ReadTimeout,
		IdleTimeout:       h.cfg.Web.IdleTimeout,
		ErrorLog:          h.errorLog(),
	}
}

// usersMux routes the users' port: the Prometheus API, events, the
// operational endpoints.
func (h *Hub) usersMux(p *parts, qopts query.Options) *http.ServeMux {
	users := http.NewServeMux()
	users.Handle("/api/v1/", query.NewHandler(p.engine, p.store.PartialQueryable(), qopts))
	users.Handle("GET /api/v1/events", events.NewQueryHandler(p.evs))
	users.HandleFunc("GET /graph", h.graph)
	// dskit's ring status page, as Mimir serves its rings'.
	users.Handle("/ring", p.ring)
	h.operational(users)
	users.HandleFunc("POST /-/reload", h.lifecycle(func(w http.ResponseWriter, _ *http.Request) {
		if err := h.Reload(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "rules and limits reloaded")
	}))
	if h.cfg.Web.EnablePprof {
		profiles(users)
	}
	return users
}
