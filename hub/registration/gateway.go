package registration

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
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

// Routes adds the gateway's endpoints to the agents' mux.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+agentapi.PathCA, s.serveCA)
	mux.HandleFunc("POST "+agentapi.PathRegister, s.serveRegister)
	mux.HandleFunc("POST "+agentapi.PathHeartbeat, s.serveHeartbeat)
	mux.HandleFunc("POST "+agentapi.PathRenew, s.serveRenew)
}

func (s *Service) serveCA(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	_, _ = w.Write(s.ca.CertPEM)
}

func (s *Service) serveRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		s.count("register", "unauthorized")
		http.Error(w, "registration needs a bootstrap token: Authorization: Bearer <token>", http.StatusUnauthorized)
		return
	}
	tok, err := s.tokens.Check(ctx, presented)
	if err != nil {
		s.count("register", "unauthorized")
		if errors.Is(err, ErrToken) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		http.Error(w, "cannot check the token now; retry", http.StatusServiceUnavailable)
		s.logger.Error("check bootstrap token", "err", err)
		return
	}
	var req agentapi.RegisterRequest
	if err := decode(w, r, &req); err != nil {
		s.count("register", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := validateRegister(req); err != nil {
		s.count("register", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	clusterID := claim(req.Claims, agentapi.ClaimClusterID)

	mc := &fleetv1.ManagedCluster{}
	err = s.reader.Get(ctx, client.ObjectKey{Name: req.ClusterName}, mc)
	switch {
	case apierrors.IsNotFound(err):
		mc = &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{
				Name:        req.ClusterName,
				Annotations: map[string]string{annotationClusterID: clusterID, annotationToken: tok.ID},
				// Set here rather than by the controller's first pass: one
				// write (and one reconcile) less per joining cluster, which
				// counts when thousands join at once.
				Finalizers: []string{finalizer},
			},
			Spec: fleetv1.ManagedClusterSpec{Accepted: tok.AutoAccept, HeartbeatPeriodSeconds: s.cfg.DefaultHeartbeatPeriodSeconds},
		}
		if tok.ClusterSet != "" {
			mc.Labels = map[string]string{fleetv1.LabelClusterSet: tok.ClusterSet}
		}
		if err := s.writer.Create(ctx, mc); err != nil {
			if apierrors.IsAlreadyExists(err) {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "cluster "+req.ClusterName+" is being registered concurrently; retry", http.StatusServiceUnavailable)
				return
			}
			s.serverError(w, "create ManagedCluster", err)
			return
		}
		if err := s.tokens.Used(ctx, tok.ID); err != nil {
			s.logger.Warn("count bootstrap token use", "token", tok.ID, "err", err)
		}
		s.logger.Info("cluster registered", "cluster", mc.Name, "token", tok.ID, "accepted", mc.Spec.Accepted)
	case err != nil:
		s.serverError(w, "get ManagedCluster", err)
		return
	case mc.DeletionTimestamp != nil:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "cluster "+req.ClusterName+" is being deregistered; retry when it is gone", http.StatusServiceUnavailable)
		return
	case mc.Annotations[annotationClusterID] != "" && mc.Annotations[annotationClusterID] != clusterID:
		s.count("register", "conflict")
		http.Error(w, fmt.Sprintf("cluster name %q is registered to another cluster (id.k8s.io %s); choose another name or delete that registration",
			req.ClusterName, mc.Annotations[annotationClusterID]), http.StatusConflict)
		return
	}

	resp := agentapi.RegisterResponse{ClusterName: mc.Name, Accepted: mc.Spec.Accepted, HeartbeatPeriodSeconds: int(period(mc).Seconds())}
	if !mc.Spec.Accepted {
		s.count("register", "pending")
		resp.Message = fmt.Sprintf("waiting for acceptance: fleetpulse hub accept %s, or kubectl patch managedcluster %s --type merge -p '{\"spec\":{\"accepted\":true}}'", mc.Name, mc.Name)
		resp.RetryAfterSeconds = pendingRetry
		writeJSON(w, resp)
		return
	}
	cert, notAfter, err := s.ca.Sign(req.CSR, mc.Name, mc.UID, s.cfg.CertificateTTL, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.count("register", "issued")
	resp.Certificate, resp.CABundle, resp.NotAfter = string(cert), string(s.ca.CertPEM), notAfter
	writeJSON(w, resp)
}

func (s *Service) serveHeartbeat(w http.ResponseWriter, r *http.Request) {
	mc, status, err := s.identify(r.Context(), r)
	if err != nil {
		s.count("heartbeat", "refused")
		refuse(w, status, err)
		return
	}
	var req agentapi.HeartbeatRequest
	if err := decode(w, r, &req); err != nil {
		s.count("heartbeat", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	now := time.Now()
	s.tracker.beat(mc.Name, beat{At: now, ClusterAPIReachable: req.ClusterAPIReachable, ClusterAPIError: truncate(req.ClusterAPIError, 512),
		AgentVersion: truncate(req.AgentVersion, 64), Claims: req.Claims})
	s.recordHeartbeat(r, mc.Name, now, s.grace(mc), req.ClusterAPIReachable)
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
	mc, status, err := s.identify(r.Context(), r)
	if err != nil {
		s.count("renew", "refused")
		refuse(w, status, err)
		return
	}
	var req agentapi.RenewRequest
	if err := decode(w, r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cert, notAfter, err := s.ca.Sign(req.CSR, mc.Name, mc.UID, s.cfg.CertificateTTL, time.Now())
	if err != nil {
		s.count("renew", "invalid")
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.count("renew", "issued")
	writeJSON(w, agentapi.RenewResponse{Certificate: string(cert), CABundle: string(s.ca.CertPEM), NotAfter: notAfter})
}

func validateRegister(req agentapi.RegisterRequest) error {
	var errs []error
	if req.ClusterName == "" {
		errs = append(errs, errors.New("clusterName is required"))
	} else if msgs := validation.IsDNS1123Label(req.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("clusterName %q: %s", req.ClusterName, strings.Join(msgs, "; ")))
	}
	if req.CSR == "" {
		errs = append(errs, errors.New("csr is required"))
	}
	if claim(req.Claims, agentapi.ClaimClusterID) == "" {
		errs = append(errs, fmt.Errorf("claims: %s (the UID of the cluster's kube-system namespace) is required", agentapi.ClaimClusterID))
	}
	return errors.Join(errs...)
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

func (s *Service) serverError(w http.ResponseWriter, what string, err error) {
	s.logger.Error(what, "err", err)
	w.Header().Set("Retry-After", "2")
	http.Error(w, what+" failed; retry", http.StatusServiceUnavailable)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
