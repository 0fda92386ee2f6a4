package hub

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/features"

	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/events"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/ingest"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metadata"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/rules"
)

// Hub is one hub process. New builds it; Run serves until its context ends.
type Hub struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	ready    atomic.Bool

	httpAddr, agentAddr atomic.Pointer[net.TCPAddr]
	// alerts is rule evaluation, which the control-plane controllers act on.
	alerts atomic.Pointer[alerting.Alerting]
	// limits are the clusters' ingest limits, which Reload reads again.
	limits atomic.Pointer[limits.Limiter]
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
	return &Hub{cfg: cfg, logger: logger, registry: reg}, nil
}

// Registry is where the hub's parts register their metrics.
func (h *Hub) Registry() prometheus.Registerer { return h.registry }

// Addr returns the HTTP listener's address once Run has bound it, else nil.
func (h *Hub) Addr() *net.TCPAddr { return h.httpAddr.Load() }

// AgentAddr returns the agent listener's address once bound, else nil.
func (h *Hub) AgentAddr() *net.TCPAddr { return h.agentAddr.Load() }

// Ready reports whether the hub serves every part, as /-/ready does.
func (h *Hub) Ready() bool { return h.ready.Load() }

// Run opens the store, serves until ctx is cancelled, then shuts down
// gracefully within the configured timeout: servers first, then the
// controllers and rule evaluation, which query the store, and the store
// last.
func (h *Hub) Run(ctx context.Context) (err error) {
	// The clusters' remote-written metric metadata, served at /api/v1/metadata.
	md, err := metadata.New(metadata.DefaultLimits(), h.registry)
	if err != nil {
		return err
	}
	store, err := metricstore.Open(h.cfg.Store, h.logger.With("component", "metricstore"), h.registry, metricstore.WithMetadata(md))
	if err != nil {
		return err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close metric store: %w", cerr)
		}
	}()
	// Bound before the rules are loaded: alerts link back to its address.
	usersLn, err := net.Listen("tcp", h.cfg.HTTPListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", h.cfg.HTTPListenAddress, err)
	}
	h.httpAddr.Store(usersLn.Addr().(*net.TCPAddr))
	defer usersLn.Close() // when a later step fails before serving

	qopts := h.cfg.Query
	qopts.Logger, qopts.Registerer, qopts.Gatherer = h.logger.With("component", "query"), h.registry, h.registry
	qopts.Metadata, qopts.Exemplars, qopts.TSDB, qopts.Retention = md, store.ExemplarQueryable(), store, h.cfg.Store.Retention
	qopts.Features = features.NewRegistry()
	tracker := promql.NewActiveQueryTracker(h.cfg.Store.Dir, qopts.MaxConcurrency, qopts.Logger)
	defer tracker.Close()
	qopts.Tracker = tracker
	engine := query.NewEngine(qopts)
	alerts, err := h.alerting(engine, store)
	if err != nil {
		return err
	}
	h.alerts.Store(alerts)
	qopts.Rules, qopts.Alertmanagers = alerts.Retriever(), alerts.Alertmanagers()
	evs := events.NewStore(h.cfg.EventCapacity, h.registry)
	users := http.NewServeMux()
	users.Handle("/api/v1/", query.NewHandler(engine, store.Queryable(), qopts))
	users.Handle("GET /api/v1/events", events.NewQueryHandler(evs))
	users.HandleFunc("GET /graph", h.graph)
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
	limiter, err := limits.New(limits.Options{File: h.cfg.IngestLimitsFile, Logger: h.logger.With("component", "limits"),
		Registerer: h.registry, HeadSeries: store.HeadSeries})
	if err != nil {
		return err
	}
	h.limits.Store(limiter)
	alertsCtx, stopAlerts := context.WithCancel(context.Background())
	alertsDone := make(chan error, 1)
	go func() { alertsDone <- alerts.Run(alertsCtx) }()
	defer func() {
		stopAlerts()
		if aerr := <-alertsDone; aerr != nil && err == nil {
			err = aerr
		}
	}()

	var servers []*http.Server
	serveErr := make(chan error, 2)
	userSrv := &http.Server{
		Handler:           users,
		ReadHeaderTimeout: userReadHeaderTimeout,
		ReadTimeout:       h.cfg.Web.ReadTimeout,
		IdleTimeout:       h.cfg.Web.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn),
	}
	ln := sourceLimit(usersLn, "web", h.cfg.Web.MaxConnectionsPerSource, h.webTLS(), h.registry)
	h.serveUsers(connectionLimit(ln, userSrv, "web", h.cfg.Web.MaxConnections, h.registry), userSrv, serveErr)
	servers = append(servers, userSrv)
	// The controllers run until the servers are shut down, and are joined
	// before the store closes.
	controllersCtx, stopControllers := context.WithCancel(context.Background())
	var controllersDone chan error
	defer func() {
		stopControllers()
		if controllersDone != nil {
			if cerr := <-controllersDone; cerr != nil {
				h.logger.Error("control-plane controllers stopped with an error", "err", cerr)
			}
		}
	}()
	var agentAddr *net.TCPAddr
	if h.cfg.AgentListenAddress != "" {
		tlsCfg, err := gateway.TLSConfig(h.cfg.AgentTLS.CertFile, h.cfg.AgentTLS.KeyFile, h.cfg.AgentTLS.ClientCAFile)
		if err != nil {
			h.shutdown(servers)
			return err
		}
		instant := query.InstantQueryFunc(engine, store.Queryable())
		// Without registration a static certificate's name is the cluster.
		var auth gateway.Authenticator = gateway.CommonName
		var cp *controlplane.ControlPlane
		var reg *registration.Service
		if h.cfg.ControlPlaneKubeconfig != "" {
			if cp, reg, err = h.controlPlane(ctx, instant, store); err != nil {
				h.shutdown(servers)
				return err
			}
			auth = reg
		}
		agents := gateway.New(gateway.Options{Authenticator: auth, Ready: h.ready.Load, Limits: limiter,
			Logger: h.logger.With("component", "gateway"), Registerer: h.registry})
		h.probes(agents)
		agents.Handle("/api/v1/write", ingest.NewHandler(store, ingest.Options{
			MaxRequestBytes: h.cfg.MaxRequestBytes, Logger: h.logger.With("component", "ingest"), Registerer: h.registry, Limits: limiter,
		}), gateway.RateLimited())
		eventSeries := events.NewSeriesRecorder(store)
		agents.Handle("/v1/logs", events.NewIngestHandler(evs, eventSeries, h.cfg.MaxRequestBytes))
		if cp != nil {
			reg.Routes(agents)
			if err := h.setupControllers(cp.Manager(), instant, agents); err != nil {
				h.shutdown(servers)
				return err
			}
			// What the hub keeps per cluster goes with the cluster.
			for _, forget := range []func(string){evs.Forget, eventSeries.Forget, md.Forget, limiter.Forget, agents.Forget} {
				reg.OnDeregistered(forget)
			}
			controllersDone = make(chan error, 1)
			go func() { controllersDone <- cp.Run(controllersCtx) }()
			if !cp.WaitReady(ctx) {
				h.shutdown(servers)
				return errors.New("control-plane caches did not sync")
			}
		}
		maxConns := agentConnectionLimit(h.cfg.AgentMaxConnections, h.cfg.Store.Shards)
		agentSrv, addr, err := h.serve(h.cfg.AgentListenAddress, tlsCfg, agents, serveErr, func(ln net.Listener, srv *http.Server) net.Listener {
			// A connection holds one of maxConns from its accept: one that
			// does not complete its handshake and headers in time is closed,
			// and one an agent leaves idle longer than any heartbeat period
			// is too.
			srv.ReadHeaderTimeout, srv.IdleTimeout = h.cfg.AgentHandshakeTimeout, agentIdleTimeout
			return connectionLimit(ln, srv, "agent", maxConns, h.registry)
		})
		if err != nil {
			h.shutdown(servers)
			return err
		}
		servers = append(servers, agentSrv)
		agentAddr = addr
	}
	h.ready.Store(true)
	// Published once ready: the gateway answers 503 until then.
	if agentAddr != nil {
		h.agentAddr.Store(agentAddr)
	}
	h.logger.Info("hub ready", "http", h.Addr(), "external_url", h.externalURL(), "web_config", h.cfg.Web.ConfigFile != "",
		"agents", h.AgentAddr(), "agent_connection_limit", agentConnectionLimit(h.cfg.AgentMaxConnections, h.cfg.Store.Shards))
	if h.cfg.Web.ConfigFile == "" && !isLoopback(usersLn.Addr()) {
		h.logger.Warn("the users' port serves without TLS or authentication on a non-loopback address: give it a web config file (--web.config.file)",
			"http", h.Addr())
	}

	select {
	case err = <-serveErr:
	case <-ctx.Done():
	}
	h.ready.Store(false)
	h.logger.Info("hub shutting down", "timeout", h.cfg.ShutdownTimeout)
	if serr := h.shutdown(servers); err == nil {
		err = serr
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
func (h *Hub) alerting(engine *promql.Engine, store *metricstore.Store) (*alerting.Alerting, error) {
	cfg := h.cfg.Alerting
	if !h.cfg.NoShippedRules {
		shipped, err := rules.WriteTo(filepath.Join(h.cfg.Store.Dir, metricstore.ShippedRulesDir))
		if err != nil {
			return nil, err
		}
		cfg.RuleFiles = append(shipped, cfg.RuleFiles...)
	}
	cfg.ExternalURL = h.externalURL()
	return alerting.New(cfg, engine, store.Queryable(), store.RoutingAppendable(), h.logger.With("component", "alerting"), h.registry)
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

// serve listens on addr (with TLS when given, and the listener wrapped by
// wrap when given) and serves in the background; it returns the server and
// the address it bound.
func (h *Hub) serve(addr string, tlsCfg *tls.Config, handler http.Handler, errs chan<- error,
	wrap func(net.Listener, *http.Server) net.Listener) (*http.Server, *net.TCPAddr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen on %q: %w", addr, err)
	}
	bound := ln.Addr().(*net.TCPAddr)
	srv := &http.Server{Handler: handler, TLSConfig: tlsCfg, ErrorLog: slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn)}
	if wrap != nil {
		ln = wrap(ln, srv)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs <- fmt.Errorf("serve %s: %w", addr, err)
		}
	}()
	return srv, bound, nil
}

func (h *Hub) shutdown(servers []*http.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down http server: %w", err))
		}
	}
	return errors.Join(errs...)
}
