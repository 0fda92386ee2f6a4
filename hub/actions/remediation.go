package actions

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// alertRemediations reconciles AlertRemediation rules. A rule's status is
// its whole effect: the policy propagator raises the policy's replica to
// enforce on the clusters the status holds Enforcing (or Resolved, waiting
// to undo).
type alertRemediations struct {
	c      client.Client
	alerts AlertSource
	events events.EventRecorder
	logger *slog.Logger
	now    func() time.Time
}

// SetupAlertRemediation adds the AlertRemediation controller to mgr. Every
// rule evaluation wakes every rule, so a firing alert acts within one
// evaluation after its enforceAfter.
func SetupAlertRemediation(mgr manager.Manager, alerts AlertSource, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &alertRemediations{c: mgr.GetClient(), alerts: alerts, events: mgr.GetEventRecorder("fleetpulse-alertremediation"), logger: logger, now: time.Now}
	wake, err := wakeOnEvaluation(mgr, alerts, func(ctx context.Context) ([]client.Object, error) {
		var list fleetv1.AlertRemediationList
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
	return ctrl.NewControllerManagedBy(mgr).Named("alertremediation").
		For(&fleetv1.AlertRemediation{}).
		// A replica that appears or goes changes where the policy is bound.
		Watches(&fleetv1.Policy{}, handler.EnqueueRequestsFromMapFunc(r.byPolicy)).
		WatchesRawSource(source.Channel(wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		Complete(r)
}

// byPolicy maps a policy replica to the rules that enforce its root.
func (r *alertRemediations) byPolicy(ctx context.Context, o client.Object) []reconcile.Request {
	root := o.GetLabels()[fleetv1.LabelRootPolicy]
	if root == "" {
		return nil
	}
	var list fleetv1.AlertRemediationList
	if err := r.c.List(ctx, &list); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, rule := range list.Items {
		if rule.Spec.PolicyRef.Namespace+"."+rule.Spec.PolicyRef.Name == root {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rule)})
		}
	}
	return out
}

func (r *alertRemediations) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rule := &fleetv1.AlertRemediation{}
	if err := r.c.Get(ctx, req.NamespacedName, rule); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	bound, err := r.bound(ctx, rule.Spec.PolicyRef)
	if err != nil {
		return ctrl.Result{}, err
	}
	active, err := r.alerts.Active(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("read the fleet's alerts: %w", err)
	}
	firing := firingByCluster(rule.Spec.AlertName, rule.Spec.MatchLabels, active)
	next, remedies, wake := decideRemediation(rule.Spec, rule.Status.Clusters, firing, bound, r.now())
	status := rule.Status.DeepCopy()
	status.Clusters = next
	status.EnforcingClusters = 0
	for _, c := range next {
		if holdsEnforce(c.State) {
			status.EnforcingClusters++
		}
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: "Active", Status: metav1.ConditionTrue, Reason: "Evaluating",
		Message: fmt.Sprintf("watching alert %s", rule.Spec.AlertName), ObservedGeneration: rule.Generation})
	if !equality.Semantic.DeepEqual(&rule.Status, status) {
		rule.Status = *status
		if err := r.c.Status().Update(ctx, rule); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status of AlertRemediation %q: %w", rule.Name, err)
		}
	}
	for _, m := range remedies {
		// "%s": the message quotes alert labels, which may hold a '%'.
		r.events.Eventf(rule, nil, corev1.EventTypeNormal, m.reason, "Remediate", "%s", m.message)
		r.logger.Info("alert remediation", "rule", rule.Name, "cluster", m.cluster, "action", m.reason, "message", m.message)
	}
	return ctrl.Result{RequeueAfter: wake}, nil
}

// bound names the clusters that hold a replica of the policy.
func (r *alertRemediations) bound(ctx context.Context, ref fleetv1.PolicyRef) (map[string]bool, error) {
	var list fleetv1.PolicyList
	if err := r.c.List(ctx, &list, client.MatchingLabels{fleetv1.LabelRootPolicy: ref.Namespace + "." + ref.Name}); err != nil {
		return nil, fmt.Errorf("list replicas of policy %s/%s: %w", ref.Namespace, ref.Name, err)
	}
	out := map[string]bool{}
	for _, p := range list.Items {
		if p.DeletionTimestamp == nil {
			out[p.Namespace] = true
		}
	}
	return out, nil
}
