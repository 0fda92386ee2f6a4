package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Hub is one hub process. New builds it; Run serves until its context ends.
type Hub struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	mux      *http.ServeMux
	ready    atomic.Bool
	// Addr is set once Run listens; it is the resolved HTTP address.
	addr atomic.Pointer[net.TCPAddr]
}

// New builds a hub from a validated configuration. It starts nothing.
func New(cfg Config, logger *slog.Logger) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid hub configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("fleetpulse_hub"),
	)
	h := &Hub{cfg: cfg, logger: logger, registry: reg, mux: http.NewServeMux()}
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	h.mux.HandleFunc("GET /-/healthy", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "Fleetpulse hub is Healthy.")
	})
	h.mux.HandleFunc("GET /-/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "Fleetpulse hub is not ready.", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "Fleetpulse hub is Ready.")
	})
	return h, nil
}

// Registry is where the hub's parts register their metrics.
func (h *Hub) Registry() prometheus.Registerer { return h.registry }

// Addr returns the HTTP listener's address once Run has bound it, else nil.
func (h *Hub) Addr() *net.TCPAddr { return h.addr.Load() }

// Run serves until ctx is cancelled, then shuts down gracefully within the
// configured timeout.
func (h *Hub) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.cfg.HTTPListenAddress)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", h.cfg.HTTPListenAddress, err)
	}
	h.addr.Store(ln.Addr().(*net.TCPAddr))
	srv := &http.Server{Handler: h.mux, ErrorLog: slog.NewLogLogger(h.logger.Handler(), slog.LevelWarn)}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	h.ready.Store(true)
	h.logger.Info("hub listening", "http", ln.Addr().String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	h.ready.Store(false)
	h.logger.Info("hub shutting down", "timeout", h.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shut down http server: %w", err)
	}
	return nil
}
