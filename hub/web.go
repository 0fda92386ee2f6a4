package hub

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"sigs.k8s.io/yaml"
)

// WebConfig configures the users' port (--http.listen-address) as
// Prometheus configures its own: TLS, client certificates and basic
// authentication from an exporter-toolkit web config file, the doors that
// change state closed unless opened, and every connection bounded.
type WebConfig struct {
	// ConfigFile is an exporter-toolkit web configuration (the file
	// Prometheus and Alertmanager take with --web.config.file); empty
	// serves plain HTTP without authentication.
	ConfigFile string
	// EnableLifecycle serves POST /-/reload; off, it answers 403.
	EnableLifecycle bool
	// EnablePprof serves Go's profiles at /debug/pprof/.
	EnablePprof bool
	// MaxConnections bounds the users' connections open at once; more wait
	// to be accepted. MaxConnectionsPerSource bounds those of one client
	// address; more are refused at once, so that one client cannot hold
	// the port.
	MaxConnections, MaxConnectionsPerSource int
	// ReadTimeout bounds reading a whole request; IdleTimeout closes a
	// keep-alive connection left idle.
	ReadTimeout, IdleTimeout time.Duration
	// ExternalURL is the URL users reach the hub at, which alerts link
	// back to; empty derives it from the bound listener.
	ExternalURL string
	// GrafanaURL, set, makes /graph (where alerts' generator URLs point)
	// open the expression in Grafana's Explore on the datasource
	// GrafanaDatasource (its UID); unset, /graph answers the expression's
	// current value through the query API.
	GrafanaURL, GrafanaDatasource string
}

// DefaultWebConfig is Prometheus's defaults for the same settings.
func DefaultWebConfig() WebConfig {
	return WebConfig{
		MaxConnections:          512,
		MaxConnectionsPerSource: 128,
		ReadTimeout:             5 * time.Minute,
		IdleTimeout:             2 * time.Minute,
	}
}

// Validate returns every problem with the configuration; the web config
// file is read and its certificates loaded, so a broken file stops the hub
// at start rather than at its first request.
func (c WebConfig) Validate() error {
	var errs []error
	if c.MaxConnections < 1 {
		errs = append(errs, fmt.Errorf("web max connections must be at least 1, got %d", c.MaxConnections))
	}
	if c.MaxConnectionsPerSource < 1 || c.MaxConnectionsPerSource > c.MaxConnections {
		errs = append(errs, fmt.Errorf("web max connections per source must be between 1 and the max connections (%d), got %d", c.MaxConnections, c.MaxConnectionsPerSource))
	}
	if c.ReadTimeout <= 0 || c.IdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("web read and idle timeouts must be positive, got %s and %s", c.ReadTimeout, c.IdleTimeout))
	}
	for what, u := range map[string]string{"external URL": c.ExternalURL, "Grafana URL": c.GrafanaURL} {
		if u == "" {
			continue
		}
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, fmt.Errorf("web %s %q: want an absolute URL (scheme://host[/path])", what, u))
		}
	}
	if c.ConfigFile != "" {
		if err := web.Validate(c.ConfigFile); err != nil {
			errs = append(errs, fmt.Errorf("web config file %q: %w", c.ConfigFile, err))
		}
	}
	return errors.Join(errs...)
}

// serveUsers serves the users' mux on ln as exporter-toolkit serves
// Prometheus's: the web config file's TLS and authentication wrap every
// route, and it is read again on each connection, so certificates and
// users rotate without a restart.
func (h *Hub) serveUsers(ln net.Listener, srv *http.Server) error {
	cfgFile := h.cfg.Web.ConfigFile
	flags := &web.FlagConfig{WebConfigFile: &cfgFile, WebListenAddresses: &[]string{ln.Addr().String()}}
	return web.Serve(ln, srv, flags, h.logger.With("component", "web"))
}

// lifecycle guards a handler that changes the hub's state, as Prometheus
// guards /-/reload behind --web.enable-lifecycle.
func (h *Hub) lifecycle(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !h.cfg.Web.EnableLifecycle {
			http.Error(w, "Lifecycle API is not enabled (--web.enable-lifecycle).", http.StatusForbidden)
			return
		}
		next(w, r)
	}
}

// profiles serves Go's profiles where Prometheus and Thanos serve them,
// when asked to: a profile costs CPU and shows the process's command line.
func profiles(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// graph is where alerts' generator URLs lead (Prometheus's
// /graph?g0.expr=...): Grafana's Explore when configured, else the query
// API's answer for the expression now.
func (h *Hub) graph(w http.ResponseWriter, r *http.Request) {
	expr := r.URL.Query().Get("g0.expr")
	if expr == "" {
		http.Error(w, "want the expression in g0.expr, as alerts' generator URLs give it", http.StatusBadRequest)
		return
	}
	if h.cfg.Web.GrafanaURL == "" {
		http.Redirect(w, r, "api/v1/query?"+url.Values{"query": {expr}}.Encode(), http.StatusFound)
		return
	}
	http.Redirect(w, r, grafanaExplore(h.cfg.Web.GrafanaURL, h.cfg.Web.GrafanaDatasource, expr), http.StatusFound)
}

// grafanaExplore is Grafana's Explore URL (schema 1) for expr over the last
// hour on the datasource uid.
func grafanaExplore(base, uid, expr string) string {
	type query struct {
		RefID      string            `json:"refId"`
		Expr       string            `json:"expr"`
		Datasource map[string]string `json:"datasource,omitempty"`
	}
	q := query{RefID: "A", Expr: expr}
	pane := map[string]any{"queries": []query{q}, "range": map[string]string{"from": "now-1h", "to": "now"}}
	if uid != "" {
		pane["datasource"] = uid
		q.Datasource = map[string]string{"type": "prometheus", "uid": uid}
		pane["queries"] = []query{q}
	}
	panes, _ := json.Marshal(map[string]any{"a": pane})
	return strings.TrimSuffix(base, "/") + "/explore?" + url.Values{"schemaVersion": {"1"}, "panes": {string(panes)}, "orgId": {"1"}}.Encode()
}

// externalURL is where users reach the hub: the configured URL, or the
// bound listener's address (the host's name when it listens on every
// address), with https when the web config turns TLS on.
func (h *Hub) externalURL() string {
	if h.cfg.Web.ExternalURL != "" {
		return strings.TrimSuffix(h.cfg.Web.ExternalURL, "/")
	}
	addr := h.boundAddr.Load()
	if addr == nil {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	scheme := "http"
	if h.webTLS() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// webTLS tells whether the web config file turns TLS on for the users' port.
func (h *Hub) webTLS() bool {
	if h.cfg.Web.ConfigFile == "" {
		return false
	}
	raw, err := os.ReadFile(h.cfg.Web.ConfigFile)
	if err != nil {
		return false
	}
	var c struct {
		TLS *struct {
			CertFile string `json:"cert_file"`
			Cert     string `json:"cert"`
		} `json:"tls_server_config"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil || c.TLS == nil {
		return false
	}
	return c.TLS.CertFile != "" || c.TLS.Cert != ""
}

// isLoopback tells whether a listener is reachable from this host only.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
