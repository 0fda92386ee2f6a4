package registration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
)

const (
	maxGatewayBody = 64 << 10
	// annotationClusterID holds the id.k8s.io claim of the cluster that
	// registered the name: a registration with another id is refused.
	annotationClusterID = "fleetpulse.io/cluster-id"
	// annotationToken names the bootstrap token that created the cluster.
	annotationToken = "fleetpulse.io/bootstrap-token"
	pendingRetry    = 5
)

// Routes adds registration's endpoints to the agents' gateway. The CA and
// registration with a bootstrap token answer callers without a client
// certificate: an agent pins the CA before it has one, and registering is
// how it gets one (the token is the credential there, checked by
// serveRegister, with its own per-source limit on refusals).
func (s *Service) Routes(gw *gateway.Gateway) {
	gw.HandleFunc("GET "+agentapi.PathCA, s.serveCA, gateway.Unauthenticated())
	gw.HandleFunc("POST "+agentapi.PathRegister, s.serveRegister, gateway.Unauthenticated())
	gw.HandleFunc("POST "+agentapi.PathHeartbeat, s.serveHeartbeat)
	gw.HandleFunc("POST "+agentapi.PathRenew, s.serveRenew)
}

func (s *Service) serveCA(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.ca.CertPEM)
}

func (s *Service) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	mc, ok := s.caller(w, r, "heartbeat")
	if !ok {
		return
	}
	var req agentapi.HeartbeatRequest
	if err := decode(w, r, &req); err != nil {
		s.count("heartbeat", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now, grace := s.now(), s.grace(mc)
	b := beat{At: now, ClusterAPIReachable: req.ClusterAPIReachable, ClusterAPIError: truncate(req.ClusterAPIError, 512),
		AgentVersion: truncate(req.AgentVersion, 64), Claims: req.Claims, Grace: grace}
	s.heard(r.Context(), mc, b)
	s.recordHeartbeat(r, mc.Name, now, grace, req.ClusterAPIReachable)
	s.count("heartbeat", "ok")
	writeJSON(w, agentapi.HeartbeatResponse{HeartbeatPeriodSeconds: int(period(mc).Seconds())})
}

// recordHeartbeat writes the heartbeat as series of the cluster, so that
// liveness is alertable in PromQL like any telemetry: its time, the grace
// period the hub allows it, and whether the agent reaches its apiserver.
func (s *Service) recordHeartbeat(r *http.Request, cluster string, now time.Time, grace time.Duration, reachable bool) {
	if s.store == nil {
		return
	}
	app, err := s.store.Appender(r.Context(), cluster)
	if err != nil {
		return // the store is closing; nothing more is written
	}
	ts := now.UnixMilli()
	up := 0.0
	if reachable {
		up = 1
	}
	_, err1 := app.Append(0, labels.FromStrings(model.MetricNameLabel, "fleetpulse_cluster_heartbeat_timestamp_seconds"), ts, float64(now.UnixNano())/1e9)
	_, err2 := app.Append(0, labels.FromStrings(model.MetricNameLabel, "fleetpulse_cluster_heartbeat_grace_seconds"), ts, grace.Seconds())
	_, err3 := app.Append(0, labels.FromStrings(model.MetricNameLabel, "fleetpulse_cluster_api_reachable"), ts, up)
	if errors.Join(err1, err2, err3) != nil {
		_ = app.Rollback()
		return
	}
	_ = app.Commit()
}

func (s *Service) serveRenew(w http.ResponseWriter, r *http.Request) {
	mc, ok := s.caller(w, r, "renew")
	if !ok {
		return
	}
	var req agentapi.RenewRequest
	if err := decode(w, r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		s.count("renew", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// The new key becomes the cluster's before a certificate for it exists:
	// a registration with the key the agent holds must find it recorded.
	if key := KeyHash(csr.RawSubjectPublicKeyInfo); mc.Annotations[AnnotationKeySHA256] != key {
		if err := s.annotate(r.Context(), mc.Name, mc.UID, func(m *fleetv1.ManagedCluster) bool { return setKey(m, key) }); err != nil {
			s.serverError(w, r, "record the cluster's key", err)
			return
		}
	}
	cert, notAfter, err := s.ca.signCSR(csr, mc.Name, mc.UID, s.cfg.CertificateTTL, time.Now())
	if err != nil {
		s.count("renew", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.count("renew", "issued")
	writeJSON(w, agentapi.RenewResponse{Certificate: string(cert), CABundle: string(s.ca.CertPEM), NotAfter: notAfter})
}

func claim(claims []agentapi.Claim, name string) string {
	for _, c := range claims {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxGatewayBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("request body is empty: want JSON")
		}
		return fmt.Errorf("decode request body: %w", err)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Service) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.logger.ErrorContext(r.Context(), what, "err", err)
	w.Header().Set("Retry-After", "2")
	http.Error(w, what+" failed; retry", http.StatusServiceUnavailable)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
