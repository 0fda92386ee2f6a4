package workset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/chartsource"
	"github.com/fleetpulse/fleetpulse/hub/internal/conflict"
	"github.com/fleetpulse/fleetpulse/hub/query"
)

// Finalizer is on every ManifestWorkSet until its works are deleted.
const Finalizer = "work.fleetpulse.io/manifestworkset-cleanup"

// retryMissingNamespace is when a pass that found a cluster's namespace
// missing (registration creates it on acceptance) looks again.
const retryMissingNamespace = 5 * time.Second

// Config tunes the controller.
type Config struct {
	// QueryTimeout bounds each gate query.
	QueryTimeout time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ChartLimits bound what a chart source fetches and renders.
	ChartLimits chartsource.Limits
	// ChartRetry is how long after a failed chart render the hub tries the
	// same source again.
	ChartRetry time.Duration
}

// DefaultConfig returns the defaults: 10 s per gate query, chartsource's
// default limits, a failed chart tried again after 30 s.
func DefaultConfig() Config {
	return Config{QueryTimeout: 10 * time.Second, ChartLimits: chartsource.DefaultLimits(), ChartRetry: 30 * time.Second}
}

// Setup adds the ManifestWorkSet controller to the hub's controller
// manager. query reads the hub's telemetry for rollout gates (nil: no
// telemetry, and a gate never passes); the rollouts' metrics register
// with reg (nil: not exported).
func Setup(mgr manager.Manager, query query.QueryFunc, reg prometheus.Registerer, logger *slog.Logger) error {
	return SetupWithConfig(mgr, DefaultConfig(), query, reg, logger)
}

// SetupWithConfig is Setup with a configuration.
func SetupWithConfig(mgr manager.Manager, cfg Config, query query.QueryFunc, reg prometheus.Registerer, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.QueryTimeout <= 0 {
		cfg.QueryTimeout = DefaultConfig().QueryTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ChartRetry <= 0 {
		cfg.ChartRetry = DefaultConfig().ChartRetry
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("register rollout metrics: %w", err)
	}
	r := &reconciler{cfg: cfg, client: mgr.GetClient(), api: mgr.GetAPIReader(), query: query, metrics: m, charts: chartsource.New(cfg.ChartLimits),
		events: mgr.GetEventRecorder("fleetpulse-manifestworkset")}
	base := logr.FromSlogHandler(logger.Handler())
	err = ctrl.NewControllerManagedBy(mgr).Named("manifestworkset").
		For(&fleetv1.ManifestWorkSet{}, builder.WithPredicates(specOrLifecycleChanged)).
		Watches(&fleetv1.ManifestWork{}, handler.EnqueueRequestsFromMapFunc(ownerOf)).
		Watches(&fleetv1.PlacementDecision{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
		Watches(&fleetv1.Placement{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
		Watches(&fleetv1.RolloutApproval{}, handler.EnqueueRequestsFromMapFunc(approvedSet)).
		// Several hubs may share a process (tests): the name is ours alone
		// within each manager.
		WithOptions(controller.Options{MaxConcurrentReconciles: 2, SkipNameValidation: ptr.To(true)}).
		WithLogConstructor(func(req *reconcile.Request) logr.Logger {
			if req == nil {
				return base
			}
			return base.WithValues("manifestworkset", req.String())
		}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build manifestworkset controller: %w", err)
	}
	return nil
}

// approvedSet maps an approval to the set it approves.
func approvedSet(_ context.Context, o client.Object) []reconcile.Request {
	a, ok := o.(*fleetv1.RolloutApproval)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: a.Namespace, Name: a.Spec.ManifestWorkSet}}}
}

// specOrLifecycleChanged passes spec changes, deletion, finalizer changes
// and a new resume request, not the controller's own status writes.
var specOrLifecycleChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		e.ObjectOld.GetAnnotations()[fleetv1.AnnotationResume] != e.ObjectNew.GetAnnotations()[fleetv1.AnnotationResume] ||
		(e.ObjectOld.GetDeletionTimestamp() == nil) != (e.ObjectNew.GetDeletionTimestamp() == nil) ||
		!equality.Semantic.DeepEqual(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers())
}}

// ownerKey is the label value naming a ManifestWorkSet: <namespace>.<name>
// (namespaces have no dots).
func ownerKey(namespace, name string) string { return namespace + "." + name }

// ownerOf maps a work back to its ManifestWorkSet through the label.
func ownerOf(_ context.Context, o client.Object) []reconcile.Request {
	ns, name, ok := strings.Cut(o.GetLabels()[fleetv1.LabelManifestWorkSet], ".")
	if !ok || ns == "" || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}}
}

type reconciler struct {
	cfg     Config
	client  client.Client // cached reads, direct writes
	api     client.Reader // uncached reads, for the works and revisions
	query   query.QueryFunc
	metrics *metrics
	events  events.EventRecorder
	hashes  hashCache
	// charts renders chart sources; attempts holds their failures.
	charts   *chartsource.Renderer
	attempts chartAttempts
}

// byPlacement maps a Placement or PlacementDecision to the sets of its
// namespace that refer to the placement.
func (r *reconciler) byPlacement(ctx context.Context, o client.Object) []reconcile.Request {
	name := o.GetName()
	if _, ok := o.(*fleetv1.PlacementDecision); ok {
		name = o.GetLabels()[fleetv1.LabelPlacement]
	}
	var sets fleetv1.ManifestWorkSetList
	if err := r.client.List(ctx, &sets, client.InNamespace(o.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list manifestworksets")
		return nil
	}
	var out []reconcile.Request
	for _, s := range sets.Items {
		for _, ref := range s.Spec.PlacementRefs {
			if ref.Name == name {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
				break
			}
		}
	}
	return out
}

// Reconcile drives one ManifestWorkSet's works to its template and its
// placements' decisions, stage by stage. The set and its works are read
// from the apiserver, not the cache, so that a pass starts from what the
// previous one wrote.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() { r.metrics.passDuration.Observe(time.Since(start).Seconds()) }()
	return conflict.Quiet(r.reconcile)(ctx, req)
}

func (r *reconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	// The set too comes from the apiserver: its status is the rollout's
	// record, and a pass that decided from a cached copy a step behind
	// would undo what the previous pass did.
	mws := &fleetv1.ManifestWorkSet{}
	if err := r.api.Get(ctx, req.NamespacedName, mws); err != nil {
		if apierrors.IsNotFound(err) {
			r.metrics.forget(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	key := ownerKey(mws.Namespace, mws.Name)
	var list fleetv1.ManifestWorkList
	if err := r.api.List(ctx, &list, client.MatchingLabels{fleetv1.LabelManifestWorkSet: key}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list manifest works: %w", err)
	}
	if mws.DeletionTimestamp != nil {
		r.hashes.forget(key)
		r.attempts.forget(key)
		r.metrics.forget(mws.Namespace, mws.Name)
		return ctrl.Result{}, r.finalize(ctx, mws, list.Items)
	}
	if controllerutil.AddFinalizer(mws, Finalizer) {
		if err := r.client.Update(ctx, mws); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}
	revs, err := r.listRevisions(ctx, mws)
	if err != nil {
		return ctrl.Result{}, err
	}
	current, chartCond, chartRetry, err := r.currentRevision(ctx, mws, &revs)
	if err != nil {
		return ctrl.Result{}, err
	}
	if current == nil {
		// A chart that never rendered: nothing to roll out yet.
		return ctrl.Result{RequeueAfter: chartRetry}, r.chartStatus(ctx, mws, chartCond)
	}

	obs := observation{refs: len(mws.Spec.PlacementRefs)}
	refs, decided, err := r.targets(ctx, mws, &obs)
	if err != nil {
		return ctrl.Result{}, err
	}
	obs.decided = len(decided)
	have := map[string]*fleetv1.ManifestWork{}
	for i := range list.Items {
		w := &list.Items[i]
		if w.Name == mws.Name {
			have[w.Namespace] = w
		}
	}

	var errs []error
	// Clusters no longer decided lose their work at once, whatever the
	// rollout.
	for _, ns := range sortedKeys(have) {
		w := have[ns]
		if decided[ns] || w.DeletionTimestamp != nil {
			continue
		}
		if err := r.client.Delete(ctx, w); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete manifest work %s/%s: %w", ns, w.Name, err))
			continue
		}
		log.Info("manifest work deleted: cluster no longer decided", "cluster", ns)
	}

	// The rollout: observe, measure the gates that are due, decide.
	hashes := r.hashes.hashes(key, have)
	in := &rolloutInput{now: r.cfg.Now(), revision: current.Spec.Revision, hashes: map[int64]string{current.Spec.Revision: current.Spec.TemplateHash},
		refs: refs, paused: mws.Spec.Paused, resume: mws.Annotations[fleetv1.AnnotationResume], works: map[string]workObs{}}
	if stable := revs.byNumber(mws.Status.StableRevision); stable != nil {
		in.stable = stable.Spec.Revision
		in.hashes[in.stable] = stable.Spec.TemplateHash
	}
	if ro := mws.Status.Rollout; ro != nil && ro.Revision == current.Spec.Revision && ro.PreviousRevision != 0 {
		if prev := revs.byNumber(ro.PreviousRevision); prev != nil {
			in.hashes[prev.Spec.Revision] = prev.Spec.TemplateHash
		}
	}
	for c := range decided {
		in.works[c] = observe(have[c], hashes[c], revs, current)
	}
	in.gates, in.invalid = parseGates(refs)
	if in.approvals, err = r.approvals(ctx, mws, current.Spec.Revision); err != nil {
		errs = append(errs, err)
	}
	in.results = r.measure(ctx, dueGates(mws.Status.Rollout, in, mws.Namespace, mws.Name))
	rollout, out := decideRollout(mws.Status.Rollout, in)

	requeue := minPositive(out.requeue, chartRetry)
	for _, c := range sortedKeys(out.apply) {
		rev := revs.byNumber(out.apply[c])
		if rev == nil {
			errs = append(errs, fmt.Errorf("cluster %s: revision %d is not kept", c, out.apply[c]))
			continue
		}
		if w := have[c]; w != nil && hashes[c] == rev.Spec.TemplateHash {
			continue // already there; the labels follow below
		}
		w, err := r.apply(ctx, mws, key, c, have[c], rev)
		switch {
		case apierrors.IsNotFound(err) && have[c] == nil:
			obs.missingNS = append(obs.missingNS, c)
			requeue = minPositive(requeue, retryMissingNamespace)
		case errors.Is(err, errConflict):
			obs.conflicts = append(obs.conflicts, c)
		case err != nil:
			errs = append(errs, err)
		default:
			have[c] = w
			hashes[c] = rev.Spec.TemplateHash
		}
	}

	var works []*fleetv1.ManifestWork
	for c := range decided {
		if w := have[c]; w != nil && w.DeletionTimestamp == nil {
			works = append(works, w)
		}
	}
	// Works name the revision their template is; one whose label lags (it
	// came back to an earlier template) is relabelled, which changes
	// nothing the agent reads.
	running := map[string]int64{}
	for _, w := range works {
		rev := revs.byHash(hashes[w.Namespace])
		if rev == nil {
			continue
		}
		running[w.Namespace] = rev.Spec.Revision
		if err := r.label(ctx, w, rev); err != nil {
			errs = append(errs, err)
		}
	}
	keep := map[int64]bool{current.Spec.Revision: true, out.stable: true, rollout.PreviousRevision: true}
	for _, n := range running {
		keep[n] = true
	}
	if err := r.pruneRevisions(ctx, mws, &revs, keep); err != nil {
		errs = append(errs, err)
	}

	obs.summary = summarise(works)
	obs.rollout = rollout
	status := mws.Status.DeepCopy()
	status.ObservedGeneration = mws.Generation
	status.CurrentRevision = current.Spec.Revision
	status.StableRevision = out.stable
	status.Rollout = rollout
	status.Revisions = countRevisions(works, running)
	status.Summary = obs.summary
	for _, c := range conditions(obs, mws.Generation) {
		meta.SetStatusCondition(&status.Conditions, c)
	}
	setChartCondition(status, chartCond, mws.Generation)
	if !equality.Semantic.DeepEqual(&mws.Status, status) {
		mws.Status = *status
		if err := r.client.Status().Update(ctx, mws); err != nil {
			// The pass's decisions are lost with it: the next pass decides
			// again from what it finds, events and counts included.
			return ctrl.Result{}, errors.Join(append(errs, fmt.Errorf("update status: %w", err))...)
		}
	}
	for _, e := range out.events {
		typ := corev1.EventTypeNormal
		if e.warning {
			typ = corev1.EventTypeWarning
		}
		r.events.Eventf(mws, nil, typ, e.reason, "Rollout", "%s", e.message)
		log.Info("rollout: "+e.message, "reason", e.reason)
	}
	r.metrics.count(mws.Namespace, mws.Name, out)
	r.metrics.observe(mws.Namespace, mws.Name, &mws.Status)
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// setChartCondition sets ChartRendered, or removes it from a set without a
// chart.
func setChartCondition(status *fleetv1.ManifestWorkSetStatus, c *metav1.Condition, generation int64) {
	if c == nil {
		meta.RemoveStatusCondition(&status.Conditions, fleetv1.ConditionChartRendered)
		return
	}
	c = c.DeepCopy()
	c.ObservedGeneration = generation
	meta.SetStatusCondition(&status.Conditions, *c)
}

// chartStatus writes only the ChartRendered condition, for a set that has
// no revision yet.
func (r *reconciler) chartStatus(ctx context.Context, mws *fleetv1.ManifestWorkSet, c *metav1.Condition) error {
	status := mws.Status.DeepCopy()
	status.ObservedGeneration = mws.Generation
	setChartCondition(status, c, mws.Generation)
	if equality.Semantic.DeepEqual(&mws.Status, status) {
		return nil
	}
	mws.Status = *status
	if err := r.client.Status().Update(ctx, mws); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// minPositive is the lesser of two durations, 0 meaning none.
func minPositive(a, b time.Duration) time.Duration {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}
