package policy

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Prune deletes what the policy's pruneObjectBehavior says it leaves
// behind, reading the cluster directly (not the engine's caches), so that
// it serves a policy the engine no longer evaluates. Only an enforce policy
// prunes. DeleteIfCreated deletes the objects of its musthave and
// mustonlyhave templates that carry its created-by annotation;
// DeleteAll deletes every object those templates name (for a template
// without a name, every object that carries its fields). None does
// nothing. Objects already gone are no error; it returns the others, and
// deletes what it can whatever fails.
func (e *Engine) Prune(ctx context.Context, p *fleetv1.Policy) error {
	behavior := p.Spec.PruneObjectBehavior
	if !enforces(p) || (behavior != fleetv1.PruneDeleteIfCreated && behavior != fleetv1.PruneDeleteAll) {
		return nil
	}
	runs, _ := e.plan(ctx, p, parse(p, nil))
	rd := apiReader{dyn: e.dyn}
	e.scope(ctx, p, runs, rd)
	var errs []error
	deleted := 0
	for _, r := range runs {
		if r.tmpl == nil || r.mapping == nil || r.tmpl.Type == fleetv1.MustNotHave {
			continue // nothing of it can exist, or nothing of it is the policy's
		}
		if r.pending != "" {
			errs = append(errs, fmt.Errorf("template %d: %s", r.index, r.pending))
			continue
		}
		for _, ns := range r.scopes {
			objs, err := rd.objects(ctx, r.mapping.Resource, ns, r.tmpl.Name)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			for _, o := range objs {
				if !prunes(p, r.tmpl, o) {
					continue
				}
				uid := o.GetUID()
				bg := metav1.DeletePropagationBackground
				err := e.resource(r, o.GetNamespace()).Delete(ctx, o.GetName(),
					metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
				switch {
				case apierrors.IsNotFound(err):
				case err != nil:
					errs = append(errs, fmt.Errorf("delete %s %s: %w", r.mapping.Resource.Resource, describeName(o.GetNamespace(), o.GetName()), err))
				default:
					deleted++
					e.log.Info("pruned", "policy", keyOf(p), "resource", r.mapping.Resource.Resource, "object", describeName(o.GetNamespace(), o.GetName()))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prune policy %s: %w", keyOf(p), err)
	}
	e.log.Info("policy pruned", "policy", keyOf(p), "behavior", behavior, "deleted", deleted)
	return nil
}

func prunes(p *fleetv1.Policy, t *template.Template, o *unstructured.Unstructured) bool {
	if p.Spec.PruneObjectBehavior == fleetv1.PruneDeleteIfCreated {
		return o.GetAnnotations()[template.AnnotationCreatedBy] == keyOf(p)
	}
	return t.Name != "" || t.Matches(o)
}
