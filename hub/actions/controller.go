package actions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

// AlertSource is the hub's rule evaluation: the fleet's active alerts,
// and a tick after each evaluation. Active fails rather than leave out
// alerts it cannot read (another replica's), which would untaint their
// clusters.
type AlertSource interface {
	Active(context.Context) ([]alerting.Alert, error)
	Evaluated() <-chan struct{}
}

// alertTaints reconciles AlertTaint rules.
type alertTaints struct {
	c client.Client
	// api reads uncached, where a taint written a moment ago must not be
	// missed: before a deleted rule lets its AlertTaint go.
	api    client.Reader
	alerts AlertSource
	events events.EventRecorder
	logger *slog.Logger
	now    func() time.Time
}

// Setup adds the AlertTaint controller to mgr. Every rule evaluation wakes
// every AlertTaint, so a firing alert taints within one evaluation.
func Setup(mgr manager.Manager, alerts AlertSource, logger *slog.Logger) error {
	r := &alertTaints{c: mgr.GetClient(), api: mgr.GetAPIReader(), alerts: alerts, events: mgr.GetEventRecorder("fleetpulse-alerttaint"), logger: logger, now: time.Now}
	wake, err := wakeOnEvaluation(mgr, alerts, func(ctx context.Context) ([]client.Object, error) {
		var list fleetv1.AlertTaintList
		if err := r.c.List(ctx, &list); err != nil {
			return nil, err
		}
		objs := make([]client.Object, len(list.Items))
		for i := range list.Items {
			objs[i] = &list.Items[i]
		}
		return objs, nil
	})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("alerttaint").
		For(&fleetv1.AlertTaint{}).
		WatchesRawSource(source.Channel(wake, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

// Reconcile decides the rule's per-cluster states from its alert, records
// them in status, then brings every cluster it concerns to them: the taint
// of its spec on the clusters it holds tainted, none of its own elsewhere
// (taints of a former key or effect included), and no taint of an AlertTaint
// that is gone. A deleted rule first takes its taints off every cluster.
func (r *alertTaints) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rule := &fleetv1.AlertTaint{}
	if err := r.c.Get(ctx, req.NamespacedName, rule); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rule.DeletionTimestamp != nil {
		return ctrl.Result{}, r.finalize(ctx, rule)
	}
	if !controllerutil.ContainsFinalizer(rule, Finalizer) {
		controllerutil.AddFinalizer(rule, Finalizer)
		if err := r.c.Update(ctx, rule); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer to AlertTaint %q: %w", rule.Name, err)
		}
	}
	now := r.now()
	var clusters fleetv1.ManagedClusterList
	if err := r.c.List(ctx, &clusters); err != nil {
		return ctrl.Result{}, fmt.Errorf("list ManagedClusters: %w", err)
	}
	live, err := r.liveRules(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	active, err := r.alerts.Active(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read the fleet's alerts: %w", err)
	}
	prev := rule.Status.Clusters
	next, acts, wake := decide(rule.Spec, prev, firingByCluster(rule.Spec.AlertName, rule.Spec.MatchLabels, active), fleetOf(clusters.Items, rule), now)
	status := rule.Status.DeepCopy()
	status.Clusters = next
	status.TaintedClusters = 0
	for _, c := range next {
		if holdsTaint(c.State) {
			status.TaintedClusters++
		}
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: "Active", Status: metav1.ConditionTrue, Reason: "Evaluating",
		Message: fmt.Sprintf("watching alert %s", rule.Spec.AlertName), ObservedGeneration: rule.Generation})
	// Status first: it is the rule's record of which clusters it holds
	// tainted, which the next reconcile decides from; a sync that fails
	// after it is retried from that record.
	if !equality.Semantic.DeepEqual(&rule.Status, status) {
		rule.Status = *status
		if err := r.c.Status().Update(ctx, rule); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status of AlertTaint %q: %w", rule.Name, err)
		}
	}

	wanted := map[string]bool{}
	for _, c := range next {
		if holdsTaint(c.State) {
			wanted[c.Cluster] = true
		}
	}
	concerned := map[string]bool{}
	for _, c := range prev {
		concerned[c.Cluster] = true
	}
	for _, c := range next {
		concerned[c.Cluster] = true
	}
	actOn := map[string]action{}
	for _, a := range acts {
		actOn[a.cluster] = a
	}
	var errs []error
	for i := range clusters.Items {
		mc := &clusters.Items[i]
		before, _ := parseOwners(mc.Annotations)
		if !concerned[mc.Name] && !r.concerns(before, rule.Name, live) {
			continue
		}
		c := claim{rule: rule.Name}
		if wanted[mc.Name] {
			c.want = &rule.Spec.Taint
		}
		added, removed, err := r.sync(ctx, mc, c, live, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.record(rule, mc.Name, actOn[mc.Name], added, removed)
	}
	if err := errors.Join(errs...); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: wake}, nil
}

// holdsTaint: the states in which the rule holds its taint on a cluster.
func holdsTaint(state string) bool { return state == StateTainted || state == StateResolved }

// concerns reports whether a cluster's taints need rule's sync although its
// status does not name the cluster: the rule owns one of them (of a former
// key), or an AlertTaint that is gone does.
func (r *alertTaints) concerns(o owners, rule string, live map[string]bool) bool {
	for owner := range o {
		if owner == rule || !live[owner] {
			return true
		}
	}
	return false
}

// liveRules names the AlertTaints that exist and are not being deleted:
// the owners whose taints stay. The cache is enough: a rule is in it before
// its first reconcile can own a taint.
func (r *alertTaints) liveRules(ctx context.Context) (map[string]bool, error) {
	var list fleetv1.AlertTaintList
	if err := r.c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list AlertTaints: %w", err)
	}
	live := map[string]bool{}
	for _, at := range list.Items {
		if at.DeletionTimestamp == nil {
			live[at.Name] = true
		}
	}
	return live, nil
}

// finalize takes a deleted rule's taints off every cluster, then lets the
// AlertTaint go.
func (r *alertTaints) finalize(ctx context.Context, rule *fleetv1.AlertTaint) error {
	if !controllerutil.ContainsFinalizer(rule, Finalizer) {
		return nil
	}
	live, err := r.liveRules(ctx)
	if err != nil {
		return err
	}
	var clusters fleetv1.ManagedClusterList
	if err := r.api.List(ctx, &clusters); err != nil {
		return fmt.Errorf("list ManagedClusters: %w", err)
	}
	now := r.now()
	var errs []error
	for i := range clusters.Items {
		mc := &clusters.Items[i]
		before, _ := parseOwners(mc.Annotations)
		if !r.concerns(before, rule.Name, live) {
			continue
		}
		_, removed, err := r.sync(ctx, mc, claim{rule: rule.Name}, live, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, id := range removed {
			r.events.Eventf(rule, nil, corev1.EventTypeNormal, "Untainted", "Taint", "untainted %s (%s): the AlertTaint is deleted", mc.Name, id.Key)
			r.logger.Info("alert taint", "rule", rule.Name, "cluster", mc.Name, "taint", false, "key", id.Key, "message", "the AlertTaint is deleted")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	orig := rule.DeepCopy()
	controllerutil.RemoveFinalizer(rule, Finalizer)
	if err := r.c.Patch(ctx, rule, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("remove finalizer of AlertTaint %q: %w", rule.Name, err)
	}
	return nil
}

// sync applies a rule's claim to a cluster (syncTaints), writing only on a
// change, and returns the taints it added and removed. listed is the
// cluster as listed; a conflict reads it again.
func (r *alertTaints) sync(ctx context.Context, listed *fleetv1.ManagedCluster, c claim, live map[string]bool, now time.Time) (added, removed []taintID, err error) {
	isLive := func(rule string) bool { return live[rule] }
	mc := listed
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if mc == nil {
			mc = &fleetv1.ManagedCluster{}
			if err := r.c.Get(ctx, client.ObjectKey{Name: listed.Name}, mc); err != nil {
				return err
			}
		}
		before, ok := parseOwners(mc.Annotations)
		if !ok {
			r.logger.Warn("unreadable annotation replaced", "cluster", mc.Name, "annotation", AnnotationOwners)
		}
		taints, after := syncTaints(mc.Spec.Taints, before, c, isLive, now)
		added, removed = diffTaints(mc.Spec.Taints, taints)
		if ok && sameOwners(before, after) && len(added)+len(removed) == 0 && sameValues(mc.Spec.Taints, taints) {
			return nil
		}
		mc = mc.DeepCopy()
		mc.Spec.Taints = taints
		mc.Annotations = setOwners(mc.Annotations, after)
		err := r.c.Update(ctx, mc)
		if err != nil {
			mc = nil // read it again
		}
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil // the cluster is gone, and its taints with it
	}
	if err != nil {
		return nil, nil, fmt.Errorf("update taints of ManagedCluster %q: %w", listed.Name, err)
	}
	return added, removed, nil
}

// diffTaints names the taints (by key and effect) in b and not in a, and
// those in a and not in b.
func diffTaints(a, b []fleetv1.Taint) (added, removed []taintID) {
	in := func(ts []fleetv1.Taint, id taintID) bool {
		return slices.ContainsFunc(ts, func(t fleetv1.Taint) bool { return idOf(t) == id })
	}
	for _, t := range b {
		if !in(a, idOf(t)) {
			added = append(added, idOf(t))
		}
	}
	for _, t := range a {
		if !in(b, idOf(t)) {
			removed = append(removed, idOf(t))
		}
	}
	return added, removed
}

// sameValues reports whether two lists of the same taints agree on values.
func sameValues(a, b []fleetv1.Taint) bool {
	return slices.EqualFunc(a, b, func(x, y fleetv1.Taint) bool { return idOf(x) == idOf(y) && x.Value == y.Value })
}

// record makes an Event and a log line of what a sync of a cluster did:
// the decision's own words when it decided a change there, and otherwise
// what changed (a taint of a former key removed, a taint removed by hand
// put back, a gone rule's taint removed).
func (r *alertTaints) record(rule *fleetv1.AlertTaint, cluster string, a action, added, removed []taintID) {
	if a.cluster != "" {
		// "%s": the message quotes alert labels, which may hold a '%'.
		r.events.Eventf(rule, nil, corev1.EventTypeNormal, a.reason, "Taint", "%s", a.message)
		r.logger.Info("alert taint", "rule", rule.Name, "cluster", a.cluster, "taint", a.taint, "message", a.message)
		return
	}
	for _, id := range added {
		msg := fmt.Sprintf("tainted %s (%s): the rule holds the cluster tainted", cluster, id.Key)
		r.events.Eventf(rule, nil, corev1.EventTypeNormal, "Tainted", "Taint", "%s", msg)
		r.logger.Info("alert taint", "rule", rule.Name, "cluster", cluster, "taint", true, "message", msg)
	}
	for _, id := range removed {
		msg := fmt.Sprintf("untainted %s (%s): no AlertTaint holds this taint any more", cluster, id.Key)
		r.events.Eventf(rule, nil, corev1.EventTypeNormal, "Untainted", "Taint", "%s", msg)
		r.logger.Info("alert taint", "rule", rule.Name, "cluster", cluster, "taint", false, "message", msg)
	}
}

// fleetOf is what the guard needs: the clusters that could take work,
// accepted, Available, and without a NoSelect taint other than rule's own
// (the taint of its key, or one it owns).
func fleetOf(clusters []fleetv1.ManagedCluster, rule *fleetv1.AlertTaint) fleetView {
	v := fleetView{fit: map[string]bool{}}
	for _, mc := range clusters {
		if !mc.Spec.Accepted || !meta.IsStatusConditionTrue(mc.Status.Conditions, fleetv1.ConditionAvailable) {
			continue
		}
		own, _ := parseOwners(mc.Annotations)
		fit := true
		for _, t := range mc.Spec.Taints {
			if t.Effect == fleetv1.TaintNoSelect && t.Key != rule.Spec.Taint.Key && !own.ownedBy(rule.Name, t) {
				fit = false
			}
		}
		if fit {
			v.fit[mc.Name] = true
		}
	}
	return v
}
