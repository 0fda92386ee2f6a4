package actions

import (
	"context"
	"fmt"
	"log/slog"
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
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

// AlertSource is the hub's rule evaluation: its active alerts, and a tick
// after each evaluation.
type AlertSource interface {
	Active() []alerting.Alert
	Evaluated() <-chan struct{}
}

// alertTaints reconciles AlertTaint rules.
type alertTaints struct {
	c      client.Client
	alerts AlertSource
	events events.EventRecorder
	logger *slog.Logger
	now    func() time.Time
}

// Setup adds the AlertTaint controller to mgr. Every rule evaluation wakes
// every AlertTaint, so a firing alert taints within one evaluation.
func Setup(mgr manager.Manager, alerts AlertSource, logger *slog.Logger) error {
	r := &alertTaints{c: mgr.GetClient(), alerts: alerts, events: mgr.GetEventRecorder("fleetpulse-alerttaint"), logger: logger, now: time.Now}
	wake := make(chan event.GenericEvent, 64)
	err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-alerts.Evaluated():
			}
			var list fleetv1.AlertTaintList
			if err := r.c.List(ctx, &list); err != nil {
				continue
			}
			for i := range list.Items {
				select {
				case wake <- event.GenericEvent{Object: &list.Items[i]}:
				default: // the queue has it already or will on the next tick
				}
			}
		}
	}))
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).Named("alerttaint").
		For(&fleetv1.AlertTaint{}).
		WatchesRawSource(source.Channel(wake, &handler.EnqueueRequestForObject{})).
		Complete(r)
}

func (r *alertTaints) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rule := &fleetv1.AlertTaint{}
	if err := r.c.Get(ctx, req.NamespacedName, rule); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if rule.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	now := r.now()
	fleet, err := r.fleet(ctx, rule.Spec.Taint.Key)
	if err != nil {
		return ctrl.Result{}, err
	}
	next, acts, wake := decide(rule.Spec, rule.Status.Clusters, firingByCluster(rule.Spec, r.alerts.Active()), fleet, now)
	for _, a := range acts {
		if err := r.apply(ctx, rule, a, now); err != nil {
			return ctrl.Result{}, err
		}
		r.events.Eventf(rule, nil, corev1.EventTypeNormal, a.reason, "Taint", a.message)
		r.logger.Info("alert taint", "rule", rule.Name, "cluster", a.cluster, "taint", a.taint, "message", a.message)
	}
	status := rule.Status.DeepCopy()
	status.Clusters = next
	status.TaintedClusters = 0
	for _, c := range next {
		if c.State == StateTainted || c.State == StateResolved {
			status.TaintedClusters++
		}
	}
	meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: "Active", Status: metav1.ConditionTrue, Reason: "Evaluating",
		Message: fmt.Sprintf("watching alert %s", rule.Spec.AlertName), ObservedGeneration: rule.Generation})
	if !equality.Semantic.DeepEqual(&rule.Status, status) {
		rule.Status = *status
		if err := r.c.Status().Update(ctx, rule); err != nil {
			return ctrl.Result{}, fmt.Errorf("update status: %w", err)
		}
	}
	return ctrl.Result{RequeueAfter: wake}, nil
}

// fleet lists the clusters that could take work: accepted, Available, and
// without a NoSelect taint other than this rule's own.
func (r *alertTaints) fleet(ctx context.Context, ownKey string) (fleetView, error) {
	var list fleetv1.ManagedClusterList
	if err := r.c.List(ctx, &list); err != nil {
		return fleetView{}, err
	}
	v := fleetView{fit: map[string]bool{}}
	for _, mc := range list.Items {
		if !mc.Spec.Accepted || !meta.IsStatusConditionTrue(mc.Status.Conditions, fleetv1.ConditionAvailable) {
			continue
		}
		fit := true
		for _, t := range mc.Spec.Taints {
			if t.Effect == fleetv1.TaintNoSelect && t.Key != ownKey {
				fit = false
			}
		}
		if fit {
			v.fit[mc.Name] = true
		}
	}
	return v, nil
}

// apply adds or removes the rule's taint on a cluster, keeping the others.
func (r *alertTaints) apply(ctx context.Context, rule *fleetv1.AlertTaint, a action, now time.Time) error {
	want := rule.Spec.Taint
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := r.c.Get(ctx, client.ObjectKey{Name: a.cluster}, mc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return err
		}
		var taints []fleetv1.Taint
		present := false
		for _, t := range mc.Spec.Taints {
			if t.Key == want.Key && t.Effect == want.Effect {
				present = true
				if !a.taint {
					continue
				}
			}
			taints = append(taints, t)
		}
		if a.taint == present {
			return nil
		}
		if a.taint {
			want.TimeAdded = metav1.NewTime(now.Truncate(time.Second))
			taints = append(taints, want)
		}
		mc.Spec.Taints = taints
		return r.c.Update(ctx, mc)
	})
}
