package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/internal/conflict"
)

// policySets keeps each PolicySet's status: its policies' verdicts.
type policySets struct {
	client client.Client
}

func setupPolicySets(mgr manager.Manager, base logr.Logger) error {
	r := &policySets{client: mgr.GetClient()}
	err := ctrl.NewControllerManagedBy(mgr).Named("policyset").
		For(&fleetv1.PolicySet{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&fleetv1.Policy{}, handler.EnqueueRequestsFromMapFunc(r.setsOf), builder.WithPredicates(isRoot)).
		WithOptions(controller.Options{SkipNameValidation: ptr.To(true)}).
		WithLogConstructor(func(req *reconcile.Request) logr.Logger {
			if req == nil {
				return base
			}
			return base.WithValues("policyset", req.String())
		}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build policyset controller: %w", err)
	}
	return nil
}

// setsOf maps a root policy to the sets of its namespace that hold it.
func (r *policySets) setsOf(ctx context.Context, o client.Object) []reconcile.Request {
	var sets fleetv1.PolicySetList
	if err := r.client.List(ctx, &sets, client.InNamespace(o.GetNamespace())); err != nil {
		logf.FromContext(ctx).Error(err, "list policy sets")
		return nil
	}
	var out []reconcile.Request
	for _, s := range sets.Items {
		if slices.Contains(s.Spec.Policies, o.GetName()) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
		}
	}
	return out
}

func (r *policySets) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return conflict.Quiet(r.reconcile)(ctx, req)
}

func (r *policySets) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := &fleetv1.PolicySet{}
	if err := r.client.Get(ctx, req.NamespacedName, set); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	st := set.Status.DeepCopy()
	st.Policies = nil
	var verdicts []fleetv1.ComplianceState
	for _, name := range set.Spec.Policies {
		m := fleetv1.PolicySetMember{Name: name}
		p := &fleetv1.Policy{}
		err := r.client.Get(ctx, client.ObjectKey{Namespace: set.Namespace, Name: name}, p)
		switch {
		case apierrors.IsNotFound(err):
			m.Compliant, m.Message = fleetv1.Pending, "policy not found"
		case err != nil:
			return ctrl.Result{}, err
		case p.Spec.Disabled:
			m.Message = "disabled"
		default:
			m.Compliant = p.Status.Compliant
			if s := p.Status.Summary; s != nil {
				m.Message = fmt.Sprintf("%d of %d clusters compliant", s.Compliant, s.Clusters)
			}
		}
		st.Policies = append(st.Policies, m)
		if m.Compliant != "" {
			verdicts = append(verdicts, m.Compliant)
		}
	}
	st.Compliant = worst(verdicts)
	if equality.Semantic.DeepEqual(&set.Status, st) {
		return ctrl.Result{}, nil
	}
	set.Status = *st
	if err := r.client.Status().Update(ctx, set); err != nil {
		return ctrl.Result{}, fmt.Errorf("update status: %w", err)
	}
	return ctrl.Result{}, nil
}
