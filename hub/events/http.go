package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
)

// NewIngestHandler takes OTLP/HTTP protobuf logs from agents, on the
// agents' gateway (the calling cluster is the request's gateway.Identity),
// into the store and, with a recorder, counts them into the cluster's series first: a request
// that cannot be counted is refused with 503 (429 when the cluster counts a
// series too often, see MaxAhead) and stores nothing, so the agent's retry
// neither loses nor doubles events. A request over the store's events per
// request, or whose encoding would decode into far more memory than its
// size, is refused with 413 before it is decoded.
func NewIngestHandler(s *Store, rec *SeriesRecorder, maxBytes int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "OTLP logs take POST", http.StatusMethodNotAllowed)
			return
		}
		id, ok := gateway.Caller(w, r)
		if !ok {
			return
		}
		cluster := id.Cluster
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, fmt.Sprintf("content type %q: only application/x-protobuf is accepted", ct), http.StatusUnsupportedMediaType)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBytes))
		if err != nil {
			s.refuse(w, refusedTooLarge, fmt.Sprintf("request body over the limit of %d bytes", maxBytes), http.StatusRequestEntityTooLarge)
			return
		}
		if _, err := inspect(body, s.opts.maxEventsPerRequest); err != nil {
			if le := (*limitError)(nil); errors.As(err, &le) {
				s.refuse(w, le.reason, le.msg, le.status)
				return
			}
			s.refuse(w, refusedMalformed, "decode OTLP logs request: "+err.Error(), http.StatusBadRequest)
			return
		}
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			s.refuse(w, refusedMalformed, "decode OTLP logs request: "+err.Error(), http.StatusBadRequest)
			return
		}
		evs := s.Decode(cluster, req.Logs())
		if rec != nil {
			if err := rec.Record(r.Context(), cluster, evs); err != nil {
				w.Header().Set("Retry-After", "1")
				if tf := (*TooFastError)(nil); errors.As(err, &tf) {
					s.refuse(w, refusedTooFast, err.Error(), http.StatusTooManyRequests)
					return
				}
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		s.Put(evs)
		resp, _ := plogotlp.NewExportResponse().MarshalProto()
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	})
}

func (s *Store) refuse(w http.ResponseWriter, reason, msg string, status int) {
	s.metrics.refused.WithLabelValues(reason).Inc()
	http.Error(w, msg, status)
}

// NewQueryHandler serves GET ?cluster=&since=&until=&limit= (times in RFC 3339
// or Unix seconds; default the last hour, 100 events, at most MaxQueryLimit)
// as JSON, newest first. A limit over the maximum is lowered to it, with a
// warning in the response, as Prometheus's API warns of partial answers.
func NewQueryHandler(s *Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		now := time.Now()
		since, err := parseTime(q.Get("since"), now.Add(-time.Hour))
		if err != nil {
			http.Error(w, "since: "+err.Error(), http.StatusBadRequest)
			return
		}
		until, err := parseTime(q.Get("until"), now.Add(time.Second))
		if err != nil {
			http.Error(w, "until: "+err.Error(), http.StatusBadRequest)
			return
		}
		limit := 100
		var warnings []string
		if v := q.Get("limit"); v != "" {
			if limit, err = strconv.Atoi(v); err != nil || limit < 1 {
				http.Error(w, fmt.Sprintf("limit %q: want a positive integer", v), http.StatusBadRequest)
				return
			}
			if limit > MaxQueryLimit {
				warnings = append(warnings, fmt.Sprintf("limit %d is over the maximum of %d events per query: at most %d returned", limit, MaxQueryLimit, MaxQueryLimit))
				limit = MaxQueryLimit
			}
		}
		resp := map[string]any{"status": "success", "data": s.Query(q.Get("cluster"), since, until, limit)}
		if warnings != nil {
			resp["warnings"] = warnings
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

func parseTime(v string, def time.Time) (time.Time, error) {
	if v == "" {
		return def, nil
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Unix(0, int64(f*1e9)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 or Unix seconds", v)
	}
	return t, nil
}
