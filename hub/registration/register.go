package registration

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// msgBadToken answers every refused token alike: the answer must not tell
// which token ids exist, nor whether one expired or was revoked. The audit
// log says which.
const msgBadToken = "bootstrap token is invalid, expired or revoked"

// errRegistrationChanged: the ManagedCluster was deleted, or deleted and
// registered again, while a request was deciding on it.
var errRegistrationChanged = errors.New("the cluster's registration changed meanwhile")

// serveRegister registers a cluster with a bootstrap token. A new name is
// created (accepted when the token says so); an existing one gets a
// certificate only for the key it registered with, or for a new key over
// mutual TLS with its current certificate (see bindKey).
func (s *Service) serveRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	a := audit{source: sourceOf(r)}
	if !s.allowSource(w, r, a) {
		return
	}
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		s.count("register", "unauthorized")
		s.limiter.fail(limitKey(a.source), time.Now())
		a.event, a.outcome, a.reason = eventToken, outcomeRefused, "no bearer token"
		s.record(ctx, slog.LevelInfo, a)
		http.Error(w, "registration needs a bootstrap token: Authorization: Bearer <token>", http.StatusUnauthorized)
		return
	}
	tok, err := s.tokens.Check(ctx, presented)
	if err != nil {
		if errors.Is(err, ErrToken) {
			s.count("register", "unauthorized")
			s.limiter.fail(limitKey(a.source), time.Now())
			a.event, a.outcome, a.tokenID, a.reason = eventToken, outcomeRefused, tokenIDOf(presented), err.Error()
			s.record(ctx, slog.LevelWarn, a)
			http.Error(w, msgBadToken, http.StatusUnauthorized)
			return
		}
		s.serverError(w, r, "check bootstrap token", err)
		return
	}
	a.tokenID = tok.ID
	var req agentapi.RegisterRequest
	if err := decode(w, r, &req); err != nil {
		s.invalid(w, r, a, http.StatusBadRequest, err)
		return
	}
	a.cluster = truncate(req.ClusterName, validation.DNS1123LabelMaxLength+1)
	if err := validateRegister(req); err != nil {
		s.invalid(w, r, a, http.StatusBadRequest, err)
		return
	}
	if why := s.reservedName(req.ClusterName); why != "" {
		a.event = eventReservedName
		s.invalid(w, r, a, http.StatusBadRequest, fmt.Errorf("clusterName %q is reserved: %s", req.ClusterName, why))
		return
	}
	csr, err := parseCSR(req.CSR)
	if err != nil {
		s.invalid(w, r, a, http.StatusBadRequest, err)
		return
	}
	a.keySHA256 = KeyHash(csr.RawSubjectPublicKeyInfo)
	clusterID := claim(req.Claims, agentapi.ClaimClusterID)

	mc := &fleetv1.ManagedCluster{}
	err = s.reader.Get(ctx, client.ObjectKey{Name: req.ClusterName}, mc)
	switch {
	case apierrors.IsNotFound(err):
		mc, ok = s.create(w, r, req.ClusterName, clusterID, tok, a)
		if !ok {
			return
		}
		s.answer(w, r, mc, csr, a, false)
		return
	case err != nil:
		s.serverError(w, r, "get ManagedCluster", err)
		return
	case mc.DeletionTimestamp != nil:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "cluster "+req.ClusterName+" is being deregistered; retry when it is gone", http.StatusServiceUnavailable)
		return
	case mc.Annotations[annotationClusterID] != "" && mc.Annotations[annotationClusterID] != clusterID:
		a.event, a.reason = eventConflict, "the id.k8s.io claim differs from the registered cluster's"
		s.nameTaken(w, r, a)
		return
	case tok.ClusterSet != "" && mc.Labels[fleetv1.LabelClusterSet] != tok.ClusterSet:
		a.event = eventScope
		a.reason = fmt.Sprintf("the token is bound to cluster set %q, the cluster is in %q", tok.ClusterSet, mc.Labels[fleetv1.LabelClusterSet])
		s.nameTaken(w, r, a)
		return
	}
	if !s.bindKey(w, r, mc, a) {
		return
	}
	s.answer(w, r, mc, csr, a, true)
}

// create registers a new cluster under the CSR's key. It answers the
// request itself when it fails.
func (s *Service) create(w http.ResponseWriter, r *http.Request, name, clusterID string, tok Token, a audit) (*fleetv1.ManagedCluster, bool) {
	ctx := r.Context()
	mc := &fleetv1.ManagedCluster{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{annotationClusterID: clusterID, annotationToken: tok.ID, AnnotationKeySHA256: a.keySHA256},
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
			http.Error(w, "cluster "+name+" is being registered concurrently; retry", http.StatusServiceUnavailable)
			return nil, false
		}
		s.serverError(w, r, "create ManagedCluster", err)
		return nil, false
	}
	if err := s.tokens.Used(ctx, tok.ID); err != nil {
		s.logger.Warn("count bootstrap token use", "token_id", tok.ID, "err", err)
	}
	a.event, a.outcome = eventRegister, outcomePending
	if mc.Spec.Accepted {
		a.outcome = outcomeAccepted
	}
	s.record(ctx, slog.LevelInfo, a)
	return mc, true
}

// bindKey decides whether a registration under an existing name may go on
// with the CSR's key: the key the cluster registered with, or any key over
// mutual TLS with the cluster's current certificate, which becomes the
// cluster's key. Any other key is recorded as a re-key request for an
// administrator and answered as pending; nothing else about the cluster
// changes, so a stranger's request cannot disturb it. bindKey answers the
// request itself when it returns false.
func (s *Service) bindKey(w http.ResponseWriter, r *http.Request, mc *fleetv1.ManagedCluster, a audit) bool {
	ctx := r.Context()
	if recorded := mc.Annotations[AnnotationKeySHA256]; recorded != "" && recorded == a.keySHA256 {
		return true
	}
	if holdsCertificate(r, mc, time.Now()) {
		err := s.annotate(ctx, mc.Name, mc.UID, func(m *fleetv1.ManagedCluster) bool { return setKey(m, a.keySHA256) })
		if err != nil {
			s.serverError(w, r, "record the cluster's key", err)
			return false
		}
		a.event, a.outcome, a.reason = eventRekey, outcomeRotated, "over mutual TLS with the cluster's certificate"
		s.record(ctx, slog.LevelInfo, a)
		return true
	}
	req := RekeyRequest{KeySHA256: a.keySHA256, TokenID: a.tokenID, Source: a.source, RequestedAt: time.Now().UTC().Truncate(time.Second)}
	added := false
	err := s.annotate(ctx, mc.Name, mc.UID, func(m *fleetv1.ManagedCluster) bool {
		added = addRekeyRequest(m, req)
		return added
	})
	if err != nil {
		s.serverError(w, r, "record the re-key request", err)
		return false
	}
	s.count("register", "rekey_pending")
	a.event, a.outcome = eventRekey, outcomeRequested
	level := slog.LevelWarn
	if !added {
		a.outcome, level = outcomePending, slog.LevelDebug // a poll of a request already listed
	}
	s.record(ctx, level, a)
	writeJSON(w, agentapi.RegisterResponse{
		ClusterName: mc.Name, Accepted: false, RetryAfterSeconds: pendingRetry,
		Message: fmt.Sprintf("cluster %s is registered with another key; an administrator must approve this agent's key %s: "+
			"fleetpulse hub accept %s --rekey --key-sha256 %s", mc.Name, a.keySHA256, mc.Name, a.keySHA256),
	})
	return false
}

// answer tells a registered cluster to wait for acceptance, or issues its
// certificate.
func (s *Service) answer(w http.ResponseWriter, r *http.Request, mc *fleetv1.ManagedCluster, csr *x509.CertificateRequest, a audit, existing bool) {
	resp := agentapi.RegisterResponse{ClusterName: mc.Name, Accepted: mc.Spec.Accepted, HeartbeatPeriodSeconds: int(period(mc).Seconds())}
	if !mc.Spec.Accepted {
		s.count("register", "pending")
		if existing {
			a.event, a.outcome = eventReregister, outcomePending
			s.record(r.Context(), slog.LevelDebug, a)
		}
		resp.Message = fmt.Sprintf("waiting for acceptance: fleetpulse hub accept %s, or kubectl patch managedcluster %s --type merge -p '{\"spec\":{\"accepted\":true}}'", mc.Name, mc.Name)
		resp.RetryAfterSeconds = pendingRetry
		writeJSON(w, resp)
		return
	}
	cert, notAfter, err := s.ca.signCSR(csr, mc.Name, mc.UID, s.cfg.CertificateTTL, time.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.count("register", "issued")
	if existing {
		a.event, a.outcome = eventReregister, outcomeIssued
		s.record(r.Context(), slog.LevelInfo, a)
	}
	resp.Certificate, resp.CABundle, resp.NotAfter = string(cert), string(s.ca.CertPEM), notAfter
	writeJSON(w, resp)
}

// allowSource applies the per-source limit; it answers 429 itself.
func (s *Service) allowSource(w http.ResponseWriter, r *http.Request, a audit) bool {
	ok, wait, first := s.limiter.check(limitKey(a.source), time.Now())
	if ok {
		return true
	}
	s.count("register", "rate_limited")
	secs := max(int(math.Ceil(wait.Seconds())), 1)
	msg := fmt.Sprintf("too many refused registration requests from %s: the hub allows %g per second per source address, in bursts of up to %d; retry after %ds",
		a.source, s.cfg.RegisterRatePerSource, s.cfg.RegisterBurstPerSource, secs)
	a.event, a.outcome, a.reason = eventRateLimit, outcomeRateLimited, msg
	level := slog.LevelDebug // every refusal is counted; a bout is logged once
	if first {
		level = slog.LevelWarn
	}
	s.record(r.Context(), level, a)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	http.Error(w, msg, http.StatusTooManyRequests)
	return false
}

// invalid refuses a malformed request, naming what is wrong.
func (s *Service) invalid(w http.ResponseWriter, r *http.Request, a audit, status int, err error) {
	s.count("register", "invalid")
	if a.event == "" {
		a.event = eventInvalid
	}
	a.outcome, a.reason = outcomeRefused, err.Error()
	s.record(r.Context(), slog.LevelInfo, a)
	http.Error(w, err.Error(), status)
}

// nameTaken refuses a name that belongs to another cluster or lies outside
// the token's cluster set, with one message for both that names no id.
func (s *Service) nameTaken(w http.ResponseWriter, r *http.Request, a audit) {
	s.count("register", "conflict")
	a.outcome = outcomeRefused
	s.record(r.Context(), slog.LevelWarn, a)
	http.Error(w, fmt.Sprintf("cluster name %q is taken by a cluster this registration cannot claim; choose another name, or delete the ManagedCluster registered under it", a.cluster),
		http.StatusConflict)
}

// holdsCertificate reports whether the request comes over mutual TLS with a
// current certificate of mc: issued for its name and its registration (UID),
// the cluster still accepted and not being deleted, as identify demands.
func holdsCertificate(r *http.Request, mc *fleetv1.ManagedCluster, now time.Time) bool {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return false
	}
	cert := r.TLS.VerifiedChains[0][0]
	return cert.Subject.CommonName == mc.Name && ClusterUID(cert) == mc.UID && now.Before(cert.NotAfter) &&
		mc.Spec.Accepted && mc.DeletionTimestamp == nil
}

// setKey makes key the cluster's key and drops a re-key request for it; it
// reports whether mc changed.
func setKey(mc *fleetv1.ManagedCluster, key string) bool {
	changed := false
	if reqs, err := RekeyRequests(mc); err == nil {
		kept := reqs[:0]
		for _, r := range reqs {
			if r.KeySHA256 != key {
				kept = append(kept, r)
			}
		}
		if len(kept) != len(reqs) {
			changed = true
			delete(mc.Annotations, AnnotationRekeyRequests)
			for _, r := range kept {
				addRekeyRequest(mc, r)
			}
		}
	}
	if mc.Annotations[AnnotationKeySHA256] != key {
		if mc.Annotations == nil {
			mc.Annotations = map[string]string{}
		}
		mc.Annotations[AnnotationKeySHA256] = key
		changed = true
	}
	return changed
}

// annotate applies f to the current ManagedCluster of one registration
// (name and uid) and writes it when f changes it, retrying write conflicts.
func (s *Service) annotate(ctx context.Context, name string, uid types.UID, f func(*fleetv1.ManagedCluster) bool) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := s.reader.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return fmt.Errorf("get ManagedCluster %q: %w", name, err)
		}
		if mc.UID != uid || mc.DeletionTimestamp != nil {
			return fmt.Errorf("annotate ManagedCluster %q: %w", name, errRegistrationChanged)
		}
		orig := mc.DeepCopy()
		if !f(mc) {
			return nil
		}
		return s.writer.Patch(ctx, mc, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
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

// reservedName says why a cluster may not have name, or "". A cluster's
// name is also its namespace on the hub, where its ManifestWorks live.
func (s *Service) reservedName(name string) string {
	switch {
	case name == "default" || strings.HasPrefix(name, "kube-"):
		return "default and kube-* are Kubernetes' own namespaces, and a cluster's name is its namespace on the hub"
	case name == "fleetpulse-system" || name == s.cfg.Namespace:
		return "it is the hub's own namespace, and a cluster's name is its namespace on the hub"
	}
	return ""
}
