package work

import (
	"context"
	"fmt"
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// finalizer puts Finalizer on the ManifestWorks of registered clusters, and
// takes it off the deleted works of a cluster that is deregistered, whose
// agent will never report them cleaned up. The agent's report removes it in
// every other case (Gateway.serveFinalizer).
type finalizer struct {
	c      client.Client
	logger *slog.Logger
}

func setupFinalizer(mgr manager.Manager, logger *slog.Logger) error {
	f := &finalizer{c: mgr.GetClient(), logger: logger}
	err := ctrl.NewControllerManagedBy(mgr).Named("manifestwork-finalizer").
		For(&fleetv1.ManifestWork{}).
		Watches(&fleetv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(f.worksOfCluster)).
		Complete(f)
	if err != nil {
		return fmt.Errorf("build manifestwork finalizer controller: %w", err)
	}
	return nil
}

// worksOfCluster maps a ManagedCluster to the works in its namespace.
func (f *finalizer) worksOfCluster(ctx context.Context, obj client.Object) []reconcile.Request {
	var works fleetv1.ManifestWorkList
	if err := f.c.List(ctx, &works, client.InNamespace(obj.GetName())); err != nil {
		f.logger.Error("list ManifestWorks of a cluster", "cluster", obj.GetName(), "err", err)
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(works.Items))
	for _, mw := range works.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&mw)})
	}
	return reqs
}

func (f *finalizer) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	mw := &fleetv1.ManifestWork{}
	if err := f.c.Get(ctx, req.NamespacedName, mw); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	mc := &fleetv1.ManagedCluster{}
	err := f.c.Get(ctx, client.ObjectKey{Name: req.Namespace}, mc)
	if err != nil && !apierrors.IsNotFound(err) {
		return reconcile.Result{}, err
	}
	registered := err == nil && mc.DeletionTimestamp == nil
	has := controllerutil.ContainsFinalizer(mw, Finalizer)
	switch {
	case mw.DeletionTimestamp == nil && registered && !has:
		orig := mw.DeepCopy()
		controllerutil.AddFinalizer(mw, Finalizer)
		if err := f.c.Patch(ctx, mw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
	case mw.DeletionTimestamp != nil && !registered && has:
		orig := mw.DeepCopy()
		controllerutil.RemoveFinalizer(mw, Finalizer)
		if err := f.c.Patch(ctx, mw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); err != nil {
			return reconcile.Result{}, client.IgnoreNotFound(err)
		}
		f.logger.Warn("cluster is deregistered: its deleted work is let go, and what it applied stays on the cluster",
			"cluster", req.Namespace, "work", req.Name)
	}
	return reconcile.Result{}, nil
}
