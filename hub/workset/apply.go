package workset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// targets reads every placementRef's decided clusters, ordered by decision
// group and name; a cluster decided by several refs follows the first.
func (r *reconciler) targets(ctx context.Context, mws *fleetv1.ManifestWorkSet, obs *observation) ([]refPlan, map[string]bool, error) {
	refs := make([]refPlan, 0, len(mws.Spec.PlacementRefs))
	decided := map[string]bool{}
	for _, ref := range mws.Spec.PlacementRefs {
		plan := refPlan{name: ref.Name, strategy: ref.RolloutStrategy}
		p := &fleetv1.Placement{}
		if err := r.client.Get(ctx, client.ObjectKey{Namespace: mws.Namespace, Name: ref.Name}, p); err != nil {
			if !apierrors.IsNotFound(err) {
				return nil, nil, err
			}
			obs.missingRefs = append(obs.missingRefs, ref.Name)
			refs = append(refs, plan)
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
				if cd.ClusterName != "" {
					n++
				}
				if cd.ClusterName == "" || decided[cd.ClusterName] {
					continue
				}
				decided[cd.ClusterName] = true
				plan.targets = append(plan.targets, target{cluster: cd.ClusterName, group: group})
			}
		}
		// The placement writes its decisions, then its status: until they
		// agree (in this controller's cache too), a decision is being written.
		if p.Status.ObservedGeneration != p.Generation || int(p.Status.NumberOfSelectedClusters) != n {
			plan.pending = fmt.Sprintf("placement %s: %d of %d decisions seen", ref.Name, n, p.Status.NumberOfSelectedClusters)
		}
		sortTargets(plan.targets)
		refs = append(refs, plan)
		obs.placementDetail = append(obs.placementDetail, fmt.Sprintf("placement %s decides %d clusters", ref.Name, len(plan.targets)))
	}
	return refs, decided, nil
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
	// A patch, not an update: the agent writes the work's status all the
	// time, and the spec and these labels are the set's alone.
	patch := client.MergeFrom(w.DeepCopy())
	w = w.DeepCopy()
	w.Spec = *rev.Spec.ManifestWorkTemplate.DeepCopy()
	setRevisionLabels(w, rev)
	if err := r.client.Patch(ctx, w, patch); err != nil {
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
