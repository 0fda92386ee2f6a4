package gateway

import (
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetpulse/fleetpulse/hub/limits"
)

// Options configure a Gateway.
type Options struct {
	// Authenticator proves who calls; CommonName when nil.
	Authenticator Authenticator
	// Ready reports whether the hub serves agents; until it does, every
	// route but probes answers 503. Nil: always ready.
	Ready func() bool
	// Limits are the clusters' limits; RateLimited routes take a token of
	// the cluster's request rate. Nil: no route is limited.
	Limits *limits.Limiter
	// Owner names where an authenticated caller's cluster is served: ""
	// here, else the host:port of the replica that owns it, where the
	// caller is redirected. Nil: every cluster is served here.
	Owner func(cluster string) (string, error)
	// ReplicaCAs are the CAs of the hub replicas' client certificates:
	// Replica routes take only certificates verified through one of them,
	// and the agents' routes refuse those. Empty: no caller is a replica.
	ReplicaCAs []*x509.Certificate
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Gateway is the agents' mux with the middleware every agent request
// passes through. New builds it; the hub serves it on the agents' port.
type Gateway struct {
	mux    *http.ServeMux
	auth   Authenticator
	ready  func() bool
	limits *limits.Limiter
	owner  func(string) (string, error)
	// replicaCAs are Options.ReplicaCAs.
	replicaCAs []*x509.Certificate
	logger     *slog.Logger
	metrics    *metrics
}

// New builds a gateway with no routes.
func New(opts Options) *Gateway {
	if opts.Authenticator == nil {
		opts.Authenticator = CommonName
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	return &Gateway{mux: http.NewServeMux(), auth: opts.Authenticator, ready: opts.Ready, limits: opts.Limits, owner: opts.Owner,
		replicaCAs: opts.ReplicaCAs, logger: slog.New(LogHandler(opts.Logger.Handler())), metrics: newMetrics(opts.Registerer)}
}

// RouteOption changes what a route asks of its callers.
type RouteOption func(*route)

type route struct {
	handler                      string
	unauthenticated, probe, rate bool
	replica                      bool
}

// Unauthenticated serves callers without a client certificate, for what
// must answer strangers by design: registration with a bootstrap token
// (which authenticates the token itself) and the CA an agent pins. Such a
// route's handler finds no Identity.
func Unauthenticated() RouteOption { return func(r *route) { r.unauthenticated = true } }

// Probe is Unauthenticated and answers before the hub is ready: health
// probes, which say themselves whether it is.
func Probe() RouteOption { return func(r *route) { r.unauthenticated, r.probe = true, true } }

// RateLimited takes a token of the calling cluster's request rate
// (limits.RequestRate), or answers 429 with Retry-After.
func RateLimited() RouteOption { return func(r *route) { r.rate = true } }

// Handle serves pattern (http.ServeMux's: "[METHOD ]path") with h behind
// the gateway's middleware. The path is the handler label of the route's
// metrics.
func (g *Gateway) Handle(pattern string, h http.Handler, opts ...RouteOption) {
	rt := route{handler: pattern}
	if _, path, ok := strings.Cut(pattern, " "); ok {
		rt.handler = path
	}
	for _, o := range opts {
		o(&rt)
	}
	g.mux.Handle(pattern, g.serve(rt, h))
}

// HandleFunc is Handle for a function.
func (g *Gateway) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request), opts ...RouteOption) {
	g.Handle(pattern, http.HandlerFunc(h), opts...)
}

// ServeHTTP serves the agents' port.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mux.ServeHTTP(w, withRequestID(w, r))
}

// Forget deletes a deregistered cluster's label values of the request
// metrics (registration's OnDeregistered).
func (g *Gateway) Forget(cluster string) { g.metrics.forget(cluster) }

// serve is one route's middleware: readiness, authentication, the
// cluster's request rate, and the metrics of every answer.
func (g *Gateway) serve(rt route, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		cluster := ""
		defer func() { g.metrics.observe(cluster, rt.handler, rec.code(), time.Since(start)) }()
		if !rt.probe && !g.ready() {
			rec.Header().Set("Retry-After", "1")
			http.Error(rec, "the hub is not ready; retry", http.StatusServiceUnavailable)
			return
		}
		if !rt.unauthenticated {
			authenticate := g.authenticate
			if rt.replica {
				authenticate = g.replicaIdentity
			}
			id, err := authenticate(r)
			if err != nil {
				g.logger.DebugContext(r.Context(), "refused an agent request", "handler", rt.handler, "err", err)
				Refuse(rec, err)
				return
			}
			cluster = id.Cluster
			r = r.WithContext(NewContext(r.Context(), id))
			if !rt.replica && g.redirect(rec, r, rt, id.Cluster) {
				return
			}
			if rt.rate && g.limits != nil {
				if refusal := g.limits.For(r.Context(), id.Cluster).AllowRequest(); refusal != nil {
					g.logger.DebugContext(r.Context(), "refused an agent request for a limit", "handler", rt.handler, "cluster", id.Cluster,
						"limit", refusal.Limit, "err", refusal)
					rec.Header().Set("Retry-After", "1")
					http.Error(rec, refusal.Error(), refusal.Status)
					return
				}
			}
		}
		h.ServeHTTP(rec, r)
	})
}

// redirect sends a caller whose cluster another replica owns there, and
// reports whether it did. The redirect is a 307: the agent repeats the
// same method and body at the owner and authenticates to it with its own
// certificate, so no replica ever speaks for a cluster. When the owners
// are unknown (the ring has none healthy for it yet) the caller retries.
func (g *Gateway) redirect(w http.ResponseWriter, r *http.Request, rt route, cluster string) bool {
	if g.owner == nil {
		return false
	}
	owner, err := g.owner(cluster)
	switch {
	case err != nil:
		g.logger.WarnContext(r.Context(), "no owner to send an agent to", "handler", rt.handler, "cluster", cluster, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "no hub replica owns this cluster now; retry", http.StatusServiceUnavailable)
		return true
	case owner == "":
		return false
	}
	http.Redirect(w, r, (&url.URL{Scheme: "https", Host: owner, Path: r.URL.Path, RawQuery: r.URL.RawQuery}).String(), http.StatusTemporaryRedirect)
	return true
}
