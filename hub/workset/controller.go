package workset

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	"github.com/fleetpulse/fleetpulse/hub/internal/conflict"
)

// Finalizer is on every ManifestWorkSet until its works are deleted.
const Finalizer = "work.fleetpulse.io/manifestworkset-cleanup"

// retryMissingNamespace is when a pass that found a cluster's namespace
// missing (registration creates it on acceptance) looks again.
const retryMissingNamespace = 5 * time.Second

// Setup adds the ManifestWorkSet controller to the hub's controller manager.
func Setup(mgr manager.Manager, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &reconciler{client: mgr.GetClient(), api: mgr.GetAPIReader()}
	base := logr.FromSlogHandler(logger.Handler())
	err := ctrl.NewControllerManagedBy(mgr).Named("manifestworkset").
		For(&fleetv1.ManifestWorkSet{}, builder.WithPredicates(specOrLifecycleChanged)).
		Watches(&fleetv1.ManifestWork{}, handler.EnqueueRequestsFromMapFunc(ownerOf)).
		Watches(&fleetv1.PlacementDecision{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
		Watches(&fleetv1.Placement{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
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

// specOrLifecycleChanged passes spec changes, deletion and finalizer
// changes, not the controller's own status writes.
var specOrLifecycleChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
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
	client client.Client // cached reads, direct writes
	api    client.Reader // uncached reads, for the works and revisions
	hashes hashCache
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
// placements' decisions. The works are read from the apiserver, not the
// cache, so that a pass counts the works the previous one wrote and a
// progressive rollout never exceeds its concurrency.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return conflict.Quiet(r.reconcile)(ctx, req)
}

func (r *reconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	mws := &fleetv1.ManifestWorkSet{}
	if err := r.client.Get(ctx, req.NamespacedName, mws); err != nil {
		if apierrors.IsNotFound(err) {
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
	current, err := r.ensureRevision(ctx, mws, &revs)
	if err != nil {
		return ctrl.Result{}, err
	}

	obs := observation{refs: len(mws.Spec.PlacementRefs), states: map[string]workState{}}
	byRef, decided, err := r.targets(ctx, mws, &obs)
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
	// rollout strategy.
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

	hashes := r.hashes.hashes(key, have)
	for c := range decided {
		obs.states[c] = stateOf(have[c], hashes[c], current.Spec.TemplateHash)
	}
	requeue := time.Duration(0)
	for i, ref := range mws.Spec.PlacementRefs {
		apply, waiting := plan(ref.RolloutStrategy, byRef[i], obs.states)
		obs.waiting += waiting
		if waiting > 0 && ref.RolloutStrategy.Type == RolloutProgressive {
			obs.strategyNote = fmt.Sprintf(", Progressive at %d at a time", max(ref.RolloutStrategy.MaxConcurrency, 1))
		} else if waiting > 0 {
			obs.strategyNote = ", " + ref.RolloutStrategy.Type
		}
		for _, c := range apply {
			w, err := r.apply(ctx, mws, key, c, have[c], current)
			switch {
			case apierrors.IsNotFound(err) && have[c] == nil:
				obs.missingNS = append(obs.missingNS, c)
				requeue = retryMissingNamespace
			case errors.Is(err, errConflict):
				obs.conflicts = append(obs.conflicts, c)
			case err != nil:
				errs = append(errs, err)
			default:
				have[c] = w
				hashes[c] = current.Spec.TemplateHash
				obs.states[c] = stateOf(w, hashes[c], current.Spec.TemplateHash)
			}
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
	keep := map[int64]bool{current.Spec.Revision: true}
	for _, n := range running {
		keep[n] = true
	}
	if err := r.pruneRevisions(ctx, mws, &revs, keep); err != nil {
		errs = append(errs, err)
	}

	obs.summary = summarise(works)
	status := mws.Status.DeepCopy()
	status.ObservedGeneration = mws.Generation
	status.CurrentRevision = current.Spec.Revision
	status.Revisions = countRevisions(works, running)
	status.Summary = obs.summary
	for _, c := range conditions(obs, mws.Generation) {
		meta.SetStatusCondition(&status.Conditions, c)
	}
	if !equality.Semantic.DeepEqual(&mws.Status, status) {
		mws.Status = *status
		if err := r.client.Status().Update(ctx, mws); err != nil {
			errs = append(errs, fmt.Errorf("update status: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// targets reads every placementRef's decided clusters, ordered by decision
// group and name; a cluster decided by several refs follows the first.
func (r *reconciler) targets(ctx context.Context, mws *fleetv1.ManifestWorkSet, obs *observation) ([][]target, map[string]bool, error) {
	byRef := make([][]target, len(mws.Spec.PlacementRefs))
	decided := map[string]bool{}
	for i, ref := range mws.Spec.PlacementRefs {
		p := &fleetv1.Placement{}
		if err := r.client.Get(ctx, client.ObjectKey{Namespace: mws.Namespace, Name: ref.Name}, p); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, nil, err
			}
			obs.missingRefs = append(obs.missingRefs, ref.Name)
			continue
		}
		var ds fleetv1.PlacementDecisionList
		if err := r.client.List(ctx, &ds, client.InNamespace(mws.Namespace), client.MatchingLabels{fleetv1.LabelPlacement: ref.Name}); err != nil {
			return nil, nil, fmt.Errorf("list decisions of placement %s: %w", ref.Name, err)
		}
		n := 0
		for _, d := range ds.Items {
			group, _ := strconv.Atoi(d.Labels[fleetv1.LabelDecisionGroupIndex])
			for _, cd := range d.Status.Decisions {
				if cd.ClusterName == "" || decided[cd.ClusterName] {
					continue
				}
				decided[cd.ClusterName] = true
				byRef[i] = append(byRef[i], target{cluster: cd.ClusterName, group: group})
				n++
			}
		}
		sortTargets(byRef[i])
		obs.placementDetail = append(obs.placementDetail, fmt.Sprintf("placement %s decides %d clusters", ref.Name, n))
	}
	return byRef, decided, nil
}

var errConflict = errors.New("a manifest work of this name is not the set's")

// apply creates a cluster's work from the template, or updates it to it.
func (r *reconciler) apply(ctx context.Context, mws *fleetv1.ManifestWorkSet, key, cluster string, w *fleetv1.ManifestWork,
	rev *fleetv1.ManifestWorkSetRevision) (*fleetv1.ManifestWork, error) {
	log := logf.FromContext(ctx)
	if w == nil {
		w = &fleetv1.ManifestWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: cluster, Name: mws.Name, Labels: map[string]string{
				fleetv1.LabelManifestWorkSet: key,
				fleetv1.LabelRevision:        strconv.FormatInt(rev.Spec.Revision, 10),
				fleetv1.LabelTemplateHash:    rev.Spec.TemplateHash,
			}},
			Spec: *rev.Spec.ManifestWorkTemplate.DeepCopy(),
		}
		err := r.client.Create(ctx, w)
		if apierrors.IsAlreadyExists(err) {
			existing := &fleetv1.ManifestWork{}
			if err := r.api.Get(ctx, client.ObjectKeyFromObject(w), existing); err != nil {
				return nil, err
			}
			if existing.Labels[fleetv1.LabelManifestWorkSet] != key {
				return nil, errConflict
			}
			return existing, nil // ours, created by a pass this one did not see
		}
		if err != nil {
			return nil, fmt.Errorf("create manifest work %s/%s: %w", cluster, mws.Name, err)
		}
		log.Info("manifest work created", "cluster", cluster, "revision", rev.Spec.Revision)
		return w, nil
	}
	w = w.DeepCopy()
	w.Spec = *rev.Spec.ManifestWorkTemplate.DeepCopy()
	setRevisionLabels(w, rev)
	if err := r.client.Update(ctx, w); err != nil {
		return nil, fmt.Errorf("update manifest work %s/%s: %w", cluster, mws.Name, err)
	}
	log.Info("manifest work updated", "cluster", cluster, "revision", rev.Spec.Revision, "generation", w.Generation)
	return w, nil
}

func setRevisionLabels(w *fleetv1.ManifestWork, rev *fleetv1.ManifestWorkSetRevision) {
	if w.Labels == nil {
		w.Labels = map[string]string{}
	}
	w.Labels[fleetv1.LabelRevision] = strconv.FormatInt(rev.Spec.Revision, 10)
	w.Labels[fleetv1.LabelTemplateHash] = rev.Spec.TemplateHash
}

// label makes a work's revision labels name rev.
func (r *reconciler) label(ctx context.Context, w *fleetv1.ManifestWork, rev *fleetv1.ManifestWorkSetRevision) error {
	if w.Labels[fleetv1.LabelRevision] == strconv.FormatInt(rev.Spec.Revision, 10) && w.Labels[fleetv1.LabelTemplateHash] == rev.Spec.TemplateHash {
		return nil
	}
	patch := client.MergeFrom(w.DeepCopy())
	setRevisionLabels(w, rev)
	if err := r.client.Patch(ctx, w, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("label manifest work %s/%s with revision %d: %w", w.Namespace, w.Name, rev.Spec.Revision, err)
	}
	return nil
}

// finalize deletes the set's works, then lets the set go. It does not wait
// for the works to be gone: their own finalizers (the agent's clean-up) may
// take as long as their clusters need.
func (r *reconciler) finalize(ctx context.Context, mws *fleetv1.ManifestWorkSet, works []fleetv1.ManifestWork) error {
	if !controllerutil.ContainsFinalizer(mws, Finalizer) {
		return nil
	}
	for i := range works {
		w := &works[i]
		if w.DeletionTimestamp != nil {
			continue
		}
		if err := r.client.Delete(ctx, w); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete manifest work %s/%s: %w", w.Namespace, w.Name, err)
		}
	}
	controllerutil.RemoveFinalizer(mws, Finalizer)
	if err := r.client.Update(ctx, mws); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	logf.FromContext(ctx).Info("manifest works deleted with their set", "works", len(works))
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
