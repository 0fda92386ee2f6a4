package workset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/chartsource"
)

// Reasons of the ChartRendered condition besides chartsource's.
const (
	ReasonRendered             = "Rendered"
	ReasonChartCredentialsMiss = "ChartCredentialsNotFound"
)

// sourceHash identifies what a chart set's revision is made from: its own
// template and its chart source (the credentials' Secret by name only).
func sourceHash(spec *fleetv1.ManifestWorkSetSpec) string {
	return hashOf(struct {
		Template fleetv1.ManifestWorkSpec `json:"template"`
		Chart    *fleetv1.HelmChartSource `json:"chart"`
	}{spec.ManifestWorkTemplate, spec.Chart})
}

// chartAttempts remembers each set's last failed render, so that passes
// (every work status change makes one) do not fetch the chart again before
// ChartRetry has passed, unless the source changed.
type chartAttempts struct {
	mu   sync.Mutex
	last map[string]chartAttempt
}

type chartAttempt struct {
	source string
	at     time.Time
	cond   metav1.Condition
}

func (a *chartAttempts) get(set, source string, now time.Time, retry time.Duration) (metav1.Condition, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	at, ok := a.last[set]
	if !ok || at.source != source || now.Sub(at.at) >= retry {
		return metav1.Condition{}, false
	}
	return at.cond, true
}

func (a *chartAttempts) put(set, source string, now time.Time, cond metav1.Condition) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		a.last = map[string]chartAttempt{}
	}
	a.last[set] = chartAttempt{source: source, at: now, cond: cond}
}

func (a *chartAttempts) forget(set string) {
	a.mu.Lock()
	delete(a.last, set)
	a.mu.Unlock()
}

// currentRevision is the revision of the set's spec. For a set with a
// chart it is the revision rendered from the spec's source: the latest if
// it was, a kept one's objects written as a new revision if one was (a
// rollback: no fetch), else a fresh render. A render that fails leaves the
// latest revision current (nil when there is none) and says why in the
// returned condition; retry is when to try again.
func (r *reconciler) currentRevision(ctx context.Context, mws *fleetv1.ManifestWorkSet, rs *revisionSet) (*fleetv1.ManifestWorkSetRevision, *metav1.Condition, time.Duration, error) {
	if mws.Spec.Chart == nil {
		r.attempts.forget(ownerKey(mws.Namespace, mws.Name))
		rev, err := r.ensureRevision(ctx, mws, rs, &mws.Spec.ManifestWorkTemplate, "", nil)
		return rev, nil, 0, err
	}
	key := ownerKey(mws.Namespace, mws.Name)
	src := sourceHash(&mws.Spec)
	latest := rs.latest()
	for i := len(rs.items) - 1; i >= 0; i-- {
		rev := rs.items[i]
		if rev.Spec.SourceHash != src || rev.Spec.Chart == nil {
			continue
		}
		if rev != latest {
			var err error
			if rev, err = r.ensureRevision(ctx, mws, rs, &rev.Spec.ManifestWorkTemplate, src, rev.Spec.Chart); err != nil {
				return nil, nil, 0, err
			}
		}
		return rev, renderedCondition(rev), 0, nil
	}
	now := r.cfg.Now()
	if cond, ok := r.attempts.get(key, src, now, r.cfg.ChartRetry); ok {
		return latest, &cond, r.cfg.ChartRetry, nil
	}
	tmpl, chart, err := r.render(ctx, mws)
	if err != nil {
		reason := chartsource.ReasonFetchFailed
		var ce *chartsource.Error
		if errors.As(err, &ce) {
			reason = ce.Reason
		}
		msg := err.Error()
		if latest != nil {
			msg += fmt.Sprintf("; revision %d goes on", latest.Spec.Revision)
		}
		cond := metav1.Condition{Type: fleetv1.ConditionChartRendered, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
		r.attempts.put(key, src, now, cond)
		r.events.Eventf(mws, nil, corev1.EventTypeWarning, reason, "RenderChart", "%s", msg)
		logf.FromContext(ctx).Info("chart not rendered", "reason", reason, "error", msg)
		return latest, &cond, r.cfg.ChartRetry, nil
	}
	r.attempts.forget(key)
	rev, err := r.ensureRevision(ctx, mws, rs, tmpl, src, chart)
	if err != nil {
		return nil, nil, 0, err
	}
	return rev, renderedCondition(rev), 0, nil
}

func renderedCondition(rev *fleetv1.ManifestWorkSetRevision) *metav1.Condition {
	c := rev.Spec.Chart
	return &metav1.Condition{Type: fleetv1.ConditionChartRendered, Status: metav1.ConditionTrue, Reason: ReasonRendered,
		Message: fmt.Sprintf("chart %s %s from %s: %d objects in revision %d", c.Chart, c.Version, c.URL, c.Objects, rev.Spec.Revision)}
}

func rawOf(m json.RawMessage) runtime.RawExtension { return runtime.RawExtension{Raw: m} }

// render fetches and renders the set's chart after its own manifests.
func (r *reconciler) render(ctx context.Context, mws *fleetv1.ManifestWorkSet) (*fleetv1.ManifestWorkSpec, *fleetv1.RenderedChart, error) {
	c := mws.Spec.Chart
	src := chartsource.Source{RepoURL: c.RepoURL, Chart: c.Chart, Version: c.Version, ReleaseName: c.ReleaseName,
		Namespace: c.Namespace, PlainHTTP: c.PlainHTTP}
	if src.ReleaseName == "" {
		src.ReleaseName = mws.Name
	}
	if c.Values != nil && len(c.Values.Raw) > 0 {
		if err := json.Unmarshal(c.Values.Raw, &src.Values); err != nil {
			return nil, nil, &chartsource.Error{Reason: chartsource.ReasonInvalid, Err: fmt.Errorf("chart values: %w", err)}
		}
	}
	if ref := c.CredentialsSecretRef; ref != nil {
		var s corev1.Secret
		// Read past the cache: the hub does not watch every Secret.
		if err := r.api.Get(ctx, client.ObjectKey{Namespace: mws.Namespace, Name: ref.Name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, nil, &chartsource.Error{Reason: ReasonChartCredentialsMiss, Err: fmt.Errorf("credentials Secret %s/%s not found", mws.Namespace, ref.Name)}
			}
			return nil, nil, fmt.Errorf("read credentials Secret %s/%s: %w", mws.Namespace, ref.Name, err)
		}
		src.Username, src.Password = string(s.Data["username"]), string(s.Data["password"])
		if src.Username == "" || src.Password == "" {
			return nil, nil, &chartsource.Error{Reason: ReasonChartCredentialsMiss, Err: fmt.Errorf("credentials Secret %s/%s lacks username or password", mws.Namespace, ref.Name)}
		}
	}
	res, err := r.charts.Render(ctx, src)
	if err != nil {
		return nil, nil, err
	}
	tmpl := mws.Spec.ManifestWorkTemplate.DeepCopy()
	for _, m := range res.Manifests {
		tmpl.Workload.Manifests = append(tmpl.Workload.Manifests, fleetv1.Manifest{RawExtension: rawOf(m)})
	}
	return tmpl, &fleetv1.RenderedChart{URL: res.URL, Chart: res.Chart, Version: res.Version, Digest: res.Digest,
		Objects: int32(len(res.Manifests)), SkippedHooks: int32(res.SkippedHooks), Source: *c.DeepCopy()}, nil
}
