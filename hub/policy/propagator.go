package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
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

// Finalizer is on every root policy until its replicas are deleted.
const Finalizer = "policy.fleetpulse.io/propagation"

// Condition types of a root policy.
const (
	// ConditionPropagated: every decided cluster has its replica.
	ConditionPropagated = "Propagated"
)

// Setup adds the policy propagator and the PolicySet status controller to
// the hub's controller manager.
func Setup(mgr manager.Manager, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &reconciler{client: mgr.GetClient(), api: mgr.GetAPIReader()}
	base := logr.FromSlogHandler(logger.Handler())
	err := ctrl.NewControllerManagedBy(mgr).Named("policy-propagator").
		For(&fleetv1.Policy{}, builder.WithPredicates(isRoot, specOrLifecycleChanged)).
		Watches(&fleetv1.Policy{}, handler.EnqueueRequestsFromMapFunc(rootOf)).
		Watches(&fleetv1.PlacementBinding{}, handler.EnqueueRequestsFromMapFunc(r.byBinding)).
		Watches(&fleetv1.PolicySet{}, handler.EnqueueRequestsFromMapFunc(r.bySet)).
		Watches(&fleetv1.PlacementDecision{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
		Watches(&fleetv1.Placement{}, handler.EnqueueRequestsFromMapFunc(r.byPlacement)).
		Watches(&fleetv1.AlertRemediation{}, handler.EnqueueRequestsFromMapFunc(byRemediation)).
		Watches(&fleetv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(r.byCluster)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 2, SkipNameValidation: ptr.To(true)}).
		WithLogConstructor(func(req *reconcile.Request) logr.Logger {
			if req == nil {
				return base
			}
			return base.WithValues("policy", req.String())
		}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build policy propagator: %w", err)
	}
	if err := setupPolicySets(mgr, base); err != nil {
		return err
	}
	return nil
}

// isRoot passes root policies: replicas carry the root's label.
var isRoot = predicate.NewPredicateFuncs(func(o client.Object) bool {
	_, replica := o.GetLabels()[fleetv1.LabelRootPolicy]
	return !replica
})

// specOrLifecycleChanged passes spec, annotation, deletion and finalizer
// changes, not the controller's own status writes.
var specOrLifecycleChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
		(e.ObjectOld.GetDeletionTimestamp() == nil) != (e.ObjectNew.GetDeletionTimestamp() == nil) ||
		!equality.Semantic.DeepEqual(e.ObjectOld.GetFinalizers(), e.ObjectNew.GetFinalizers()) ||
		!equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations())
}}

// rootOf maps a replica to its root.
func rootOf(_ context.Context, o client.Object) []reconcile.Request {
	ns, name, ok := splitRootKey(o.GetLabels()[fleetv1.LabelRootPolicy])
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}}
}

func byRemediation(_ context.Context, o client.Object) []reconcile.Request {
	rule, ok := o.(*fleetv1.AlertRemediation)
	if !ok {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Namespace: rule.Spec.PolicyRef.Namespace, Name: rule.Spec.PolicyRef.Name}}}
}

type reconciler struct {
	client client.Client // cached reads, direct writes
	api    client.Reader // uncached reads, for the replicas
}

// rootsIn lists the root policies of a namespace, as requests; keep filters
// them by name.
func (r *reconciler) rootsIn(ctx context.Context, namespace string, keep func(name string) bool) []reconcile.Request {
	var list fleetv1.PolicyList
	opts := []client.ListOption{}
	if namespace != "" {
		opts = append(opts, client.InNamespace(namespace))
	}
	if err := r.client.List(ctx, &list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "list policies")
		return nil
	}
	var out []reconcile.Request
	for _, p := range list.Items {
		if _, replica := p.Labels[fleetv1.LabelRootPolicy]; replica || !keep(p.Name) {
			continue
		}
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return out
}

// byBinding wakes every root policy of the binding's namespace: a binding's
// subjects may have changed in either direction, so the policies it no
// longer names must look too.
func (r *reconciler) byBinding(ctx context.Context, o client.Object) []reconcile.Request {
	return r.rootsIn(ctx, o.GetNamespace(), func(string) bool { return true })
}

// bySet wakes every root policy of the set's namespace, for the same reason.
func (r *reconciler) bySet(ctx context.Context, o client.Object) []reconcile.Request {
	return r.rootsIn(ctx, o.GetNamespace(), func(string) bool { return true })
}

// byPlacement wakes the root policies that bindings of the placement's
// namespace bind to it.
func (r *reconciler) byPlacement(ctx context.Context, o client.Object) []reconcile.Request {
	name := o.GetName()
	if _, ok := o.(*fleetv1.PlacementDecision); ok {
		name = o.GetLabels()[fleetv1.LabelPlacement]
	}
	var bindings fleetv1.PlacementBindingList
	if err := r.client.List(ctx, &bindings, client.InNamespace(o.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list placement bindings")
		return nil
	}
	for _, b := range bindings.Items {
		if b.PlacementRef.Name == name {
			return r.rootsIn(ctx, o.GetNamespace(), func(string) bool { return true })
		}
	}
	return nil
}

// byCluster wakes the roots with a replica for the cluster: a cluster that
// goes releases its replicas' finalizers.
func (r *reconciler) byCluster(ctx context.Context, o client.Object) []reconcile.Request {
	var list fleetv1.PolicyList
	if err := r.client.List(ctx, &list, client.InNamespace(o.GetName()), client.HasLabels{fleetv1.LabelRootPolicy}); err != nil {
		logf.FromContext(ctx).Error(err, "list policy replicas")
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		out = append(out, rootOf(ctx, &list.Items[i])...)
	}
	return out
}

// Reconcile keeps one replica of a root policy per cluster it reaches, and
// sums up their status.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return conflict.Quiet(r.reconcile)(ctx, req)
}

func (r *reconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	root := &fleetv1.Policy{}
	if err := r.client.Get(ctx, req.NamespacedName, root); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if _, replica := root.Labels[fleetv1.LabelRootPolicy]; replica {
		return ctrl.Result{}, nil
	}
	key := rootKey(root.Namespace, root.Name)
	var list fleetv1.PolicyList
	if err := r.api.List(ctx, &list, client.MatchingLabels{fleetv1.LabelRootPolicy: key}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list replicas: %w", err)
	}
	have := map[string]*fleetv1.Policy{}
	for i := range list.Items {
		have[list.Items[i].Namespace] = &list.Items[i]
	}
	registered, err := r.registered(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	if root.DeletionTimestamp != nil {
		return ctrl.Result{}, r.finalize(ctx, root, have, registered)
	}
	if controllerutil.AddFinalizer(root, Finalizer) {
		if err := r.client.Update(ctx, root); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	var problems []string
	if errs := validation.IsValidLabelValue(key); len(errs) > 0 {
		problems = append(problems, fmt.Sprintf("namespace and name together are too long for the replica's label %s (%s)", fleetv1.LabelRootPolicy, strings.Join(errs, "; ")))
	}
	targets, notes, err := r.targets(ctx, root)
	if err != nil {
		return ctrl.Result{}, err
	}
	problems = append(problems, notes...)
	if err := r.alertEnforced(ctx, root, targets); err != nil {
		return ctrl.Result{}, err
	}
	if validation.IsValidLabelValue(key) != nil {
		targets = map[string]target{} // no replica can carry the label
	}

	var errs []error
	for _, c := range sortedKeys(have) {
		if _, ok := targets[c]; ok {
			continue
		}
		if err := r.remove(ctx, have[c], registered[c]); err != nil {
			errs = append(errs, err)
		}
	}
	for _, c := range sortedKeys(targets) {
		if !registered[c] {
			problems = append(problems, fmt.Sprintf("cluster %s is decided but not registered", c))
			continue
		}
		p, err := r.apply(ctx, root, key, c, targets[c], have[c])
		switch {
		case errors.Is(err, errNotOurs):
			problems = append(problems, fmt.Sprintf("cluster %s: a policy named %s exists there and is not this policy's replica", c, replicaName(root)))
		case apierrors.IsNotFound(err):
			problems = append(problems, fmt.Sprintf("cluster %s has no namespace yet", c))
		case err != nil:
			errs = append(errs, err)
		default:
			have[c] = p
		}
	}

	status := summarise(root, targets, have)
	cond := metav1.Condition{Type: ConditionPropagated, Status: metav1.ConditionTrue, Reason: "Propagated",
		Message: fmt.Sprintf("replicated to %d clusters", len(targets)), ObservedGeneration: root.Generation}
	if root.Spec.Disabled {
		cond.Reason, cond.Message = "Disabled", "the policy is disabled: no cluster has a replica"
	} else if len(problems) > 0 {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "Incomplete", strings.Join(problems, "; ")
	}
	status.Conditions = slices.Clone(root.Status.Conditions)
	meta.SetStatusCondition(&status.Conditions, cond)
	status.ObservedGeneration = root.Generation
	if !equality.Semantic.DeepEqual(&root.Status, status) {
		root.Status = *status
		if err := r.client.Status().Update(ctx, root); err != nil {
			errs = append(errs, fmt.Errorf("update status: %w", err))
		}
	}
	return ctrl.Result{}, errors.Join(errs...)
}

// registered names the accepted clusters that still exist.
func (r *reconciler) registered(ctx context.Context) (map[string]bool, error) {
	var clusters fleetv1.ManagedClusterList
	if err := r.client.List(ctx, &clusters); err != nil {
		return nil, fmt.Errorf("list managed clusters: %w", err)
	}
	out := map[string]bool{}
	for _, c := range clusters.Items {
		if c.Spec.Accepted && c.DeletionTimestamp == nil {
			out[c.Name] = true
		}
	}
	return out, nil
}

func replicaName(root *fleetv1.Policy) string { return root.Namespace + "." + root.Name }

var errNotOurs = errors.New("a policy of this name is not the root's replica")

// apply creates or updates a cluster's replica from the root.
func (r *reconciler) apply(ctx context.Context, root *fleetv1.Policy, key, cluster string, t target, have *fleetv1.Policy) (*fleetv1.Policy, error) {
	want := replicaOf(root, key, cluster, t)
	if have == nil {
		err := r.client.Create(ctx, want)
		if apierrors.IsAlreadyExists(err) {
			existing := &fleetv1.Policy{}
			if err := r.api.Get(ctx, client.ObjectKeyFromObject(want), existing); err != nil {
				return nil, err
			}
			if existing.Labels[fleetv1.LabelRootPolicy] != key {
				return nil, errNotOurs
			}
			have = existing // ours, created by a pass this one did not see
		} else if err != nil {
			return nil, fmt.Errorf("create replica %s/%s: %w", cluster, want.Name, err)
		} else {
			logf.FromContext(ctx).Info("policy replicated", "cluster", cluster, "remediation", want.Spec.RemediationAction)
			return want, nil
		}
	}
	if have.DeletionTimestamp != nil {
		return have, nil // being pruned; the next pass after it is gone recreates it
	}
	if equality.Semantic.DeepEqual(have.Spec, want.Spec) && equality.Semantic.DeepEqual(have.Annotations, want.Annotations) &&
		equality.Semantic.DeepEqual(have.Labels, want.Labels) && slices.Equal(have.Finalizers, want.Finalizers) {
		return have, nil
	}
	updated := have.DeepCopy()
	updated.Spec, updated.Annotations, updated.Labels, updated.Finalizers = want.Spec, want.Annotations, want.Labels, want.Finalizers
	if err := r.client.Update(ctx, updated); err != nil {
		return nil, fmt.Errorf("update replica %s/%s: %w", cluster, updated.Name, err)
	}
	logf.FromContext(ctx).Info("policy replica updated", "cluster", cluster, "remediation", updated.Spec.RemediationAction)
	return updated, nil
}

// replicaOf is the replica a cluster should have.
func replicaOf(root *fleetv1.Policy, key, cluster string, t target) *fleetv1.Policy {
	p := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   cluster,
			Name:        replicaName(root),
			Labels:      map[string]string{fleetv1.LabelRootPolicy: key, fleetv1.LabelPolicyCluster: cluster},
			Annotations: map[string]string{},
		},
		Spec: *root.Spec.DeepCopy(),
	}
	for _, a := range []string{fleetv1.AnnotationStandards, fleetv1.AnnotationCategories, fleetv1.AnnotationControls} {
		if v, ok := root.Annotations[a]; ok {
			p.Annotations[a] = v
		}
	}
	if len(p.Annotations) == 0 {
		p.Annotations = nil
	}
	if t.enforce {
		p.Spec.RemediationAction = fleetv1.RemediationEnforce
	}
	p.Spec.RemediationAction = fleetv1.RemediationAction(strings.ToLower(string(p.Spec.RemediationAction)))
	if p.Spec.RemediationAction == "" {
		p.Spec.RemediationAction = fleetv1.RemediationInform
	}
	if p.Spec.PruneObjectBehavior != "" && p.Spec.PruneObjectBehavior != fleetv1.PruneNone {
		p.Finalizers = []string{fleetv1.FinalizerPolicyPrune}
	}
	return p
}

// remove deletes a replica. The prune finalizer stays while the cluster is
// registered (its agent prunes and removes it) and goes with the cluster.
func (r *reconciler) remove(ctx context.Context, p *fleetv1.Policy, registered bool) error {
	if !registered && controllerutil.ContainsFinalizer(p, fleetv1.FinalizerPolicyPrune) {
		p = p.DeepCopy()
		controllerutil.RemoveFinalizer(p, fleetv1.FinalizerPolicyPrune)
		if err := r.client.Update(ctx, p); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("release replica %s/%s of a cluster that is gone: %w", p.Namespace, p.Name, err)
		}
	}
	if p.DeletionTimestamp != nil {
		return nil
	}
	if err := r.client.Delete(ctx, p); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete replica %s/%s: %w", p.Namespace, p.Name, err)
	}
	logf.FromContext(ctx).Info("policy replica deleted: cluster no longer reached", "cluster", p.Namespace)
	return nil
}

// finalize deletes the root's replicas, then lets the root go. It does not
// wait for pruning: the replicas' own finalizers hold them until their
// agents have pruned.
func (r *reconciler) finalize(ctx context.Context, root *fleetv1.Policy, have map[string]*fleetv1.Policy, registered map[string]bool) error {
	if !controllerutil.ContainsFinalizer(root, Finalizer) {
		return nil
	}
	for _, c := range sortedKeys(have) {
		if err := r.remove(ctx, have[c], registered[c]); err != nil {
			return err
		}
	}
	controllerutil.RemoveFinalizer(root, Finalizer)
	if err := r.client.Update(ctx, root); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
