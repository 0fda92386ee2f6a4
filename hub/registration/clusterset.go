package registration

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// clusterSets keeps every ClusterSet's member count and Empty condition.
type clusterSets struct{ s *Service }

// members selects a set's clusters: its selector, or else the clusters
// labelled with its name.
func members(set *fleetv1.ClusterSet) (labels.Selector, error) {
	if set.Spec.ClusterSelector == nil {
		return labels.SelectorFromSet(labels.Set{fleetv1.LabelClusterSet: set.Name}), nil
	}
	return metav1.LabelSelectorAsSelector(set.Spec.ClusterSelector)
}

func (c clusterSets) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	set := &fleetv1.ClusterSet{}
	if err := c.s.cache.Get(ctx, req.NamespacedName, set); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	status := set.Status.DeepCopy()
	sel, err := members(set)
	if err != nil {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: "Valid", Status: metav1.ConditionFalse, Reason: "InvalidSelector",
			Message: err.Error(), ObservedGeneration: set.Generation})
	} else {
		var list fleetv1.ManagedClusterList
		if err := c.s.cache.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
			return ctrl.Result{}, err
		}
		status.Clusters = int32(len(list.Items))
		empty := metav1.Condition{Type: "Empty", Status: metav1.ConditionFalse, Reason: "HasClusters",
			Message: fmt.Sprintf("%d clusters", len(list.Items)), ObservedGeneration: set.Generation}
		if len(list.Items) == 0 {
			empty.Status, empty.Reason, empty.Message = metav1.ConditionTrue, "NoClusters", "no managed cluster belongs to the set"
		}
		meta.SetStatusCondition(&status.Conditions, empty)
		meta.RemoveStatusCondition(&status.Conditions, "Valid")
	}
	if equality.Semantic.DeepEqual(&set.Status, status) {
		return ctrl.Result{}, nil
	}
	set.Status = *status
	return ctrl.Result{}, c.s.writer.Status().Update(ctx, set)
}

// setsOf maps a changed cluster to every set, since selectors may match it
// by any label; sets are few.
func (c clusterSets) setsOf(ctx context.Context, _ client.Object) []reconcile.Request {
	var sets fleetv1.ClusterSetList
	if err := c.s.cache.List(ctx, &sets); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(sets.Items))
	for _, set := range sets.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKey{Name: set.Name}})
	}
	return out
}

func (c clusterSets) setup(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).Named("clusterset").
		For(&fleetv1.ClusterSet{}).
		Watches(&fleetv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(c.setsOf)).
		Complete(c)
}
