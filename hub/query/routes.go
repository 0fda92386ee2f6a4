package query

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/prometheus/prometheus/model/metadata"
)

// MetadataSource is what /api/v1/metadata serves (metadata.Store).
type MetadataSource interface {
	// Query returns each metric family's distinct metadata, merged over
	// the clusters, with Prometheus's metric, limit and limit_per_metric.
	Query(metric string, limit, limitPerMetric int) map[string][]metadata.Metadata
}

// AlertsSource is what /api/v1/alerts serves in place of the alerts of
// the rules this process evaluates (alerting.Alerting among replicas,
// where each evaluates its own clusters' rules).
type AlertsSource interface {
	// FleetAlerts returns the alerts as Prometheus's /api/v1/alerts
	// lists them (its data), and warnings naming what was left out.
	FleetAlerts(ctx context.Context) (data any, warnings []string)
}

// hubRoutes answers, ahead of Prometheus's router (api), the routes the
// hub answers its own way: /metadata from the clusters' remote-written
// metadata (Prometheus reads its scrape targets', and the hub has none),
// /alerts from alerts (when set), and, with a 404 saying why, what Prometheus serves and the hub does not
// (TSDB admin, deleting series, remote write and OTLP here), which
// Prometheus would answer 503, 500 or a 404 naming one of its flags.
func hubRoutes(api http.Handler, md MetadataSource, alerts AlertsSource) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle("GET /api/v1/metadata", metadataHandler{md})
	if alerts != nil {
		mux.HandleFunc("GET /api/v1/alerts", func(w http.ResponseWriter, r *http.Request) {
			data, warnings := alerts.FleetAlerts(r.Context())
			respond(w, http.StatusOK, response{Status: "success", Data: data, Warnings: warnings})
		})
	}
	admin := notServed("the hub does not serve Prometheus's TSDB admin APIs: its series are kept in shards of its own store")
	for _, method := range []string{http.MethodPost, http.MethodPut} {
		for _, op := range []string{"delete_series", "clean_tombstones", "snapshot"} {
			mux.Handle(method+" /api/v1/admin/tsdb/"+op, admin)
		}
	}
	mux.Handle("DELETE /api/v1/series", notServed("the hub does not delete series"))
	mux.Handle("POST /api/v1/write", notServed("remote write is served on the hub's agent listener, to clusters with a client certificate"))
	mux.Handle("POST /api/v1/otlp/v1/metrics", notServed("the hub takes no OTLP metrics: clusters remote-write their series"))
	return mux
}

// response is Prometheus's API envelope.
type response struct {
	Status    string   `json:"status"`
	Data      any      `json:"data,omitempty"`
	ErrorType string   `json:"errorType,omitempty"`
	Error     string   `json:"error,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
}

func respond(w http.ResponseWriter, code int, r response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(r)
}

func notServed(why string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		respond(w, http.StatusNotFound, response{Status: "error", ErrorType: "not_found", Error: why})
	})
}

// metadataHandler serves /api/v1/metadata as Prometheus does, from the
// clusters' metadata.
type metadataHandler struct{ md MetadataSource }

func (h metadataHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit")
	if err != nil {
		respond(w, http.StatusBadRequest, response{Status: "error", ErrorType: "bad_data", Error: err.Error()})
		return
	}
	limitPerMetric, err := intParam(r, "limit_per_metric")
	if err != nil {
		respond(w, http.StatusBadRequest, response{Status: "error", ErrorType: "bad_data", Error: err.Error()})
		return
	}
	data := map[string][]metadata.Metadata{}
	if h.md != nil {
		data = h.md.Query(r.FormValue("metric"), limit, limitPerMetric)
	}
	respond(w, http.StatusOK, response{Status: "success", Data: data})
}

// intParam reads an integer parameter, -1 when absent, refusing as
// Prometheus does.
func intParam(r *http.Request, name string) (int, error) {
	s := r.FormValue(name)
	if s == "" {
		return -1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New(name + " must be a number")
	}
	return n, nil
}
