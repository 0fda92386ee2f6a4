package policy

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Reasons of enforcement, beside the template package's.
const (
	ReasonCreated = "created"
	ReasonUpdated = "updated"
	ReasonDeleted = "deleted"
)

// act does what a non-compliant object needs: when enforcing, create,
// apply, update or delete it; when informing, ask the apiserver (dry run)
// whether a mustonlyhave difference is only one of defaults, which the
// apiserver would put back anyway.
func (e *Engine) act(ctx context.Context, p *fleetv1.Policy, r *run, rs *result, enforce bool) {
	e.actOnce(ctx, p, r, rs, enforce, true)
}

func (e *Engine) actOnce(ctx context.Context, p *fleetv1.Policy, r *run, rs *result, enforce, retry bool) {
	ri := e.resource(r, rs.Namespace)
	opts := metav1.UpdateOptions{FieldManager: e.cfg.FieldManager}
	if rs.Action == template.Update {
		// Defaults the apiserver fills in (a subject's apiGroup, a
		// Deployment's strategy) are no difference: a dry run says whether
		// the update would change anything the template names.
		dry := opts
		dry.DryRun = []string{metav1.DryRunAll}
		after, err := ri.Update(ctx, rs.Write, dry)
		switch {
		case err == nil && r.tmpl.SameAs(after, rs.Existing):
			rs.Compliant, rs.Reason, rs.Diffs = true, template.ReasonFoundAsSpecified, nil
			return
		case apierrors.IsConflict(err) && retry && enforce:
			e.again(ctx, p, r, rs)
			return
		case err != nil:
			e.log.Debug("dry-run update failed; the comparison stands", "policy", keyOf(p), "object", describeName(rs.Namespace, rs.Name), "err", err)
		}
	}
	if !enforce {
		return
	}
	var err error
	switch rs.Action {
	case template.None:
		return
	case template.Create:
		obj := rs.Write.DeepCopy()
		ann := obj.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[template.AnnotationCreatedBy] = keyOf(p)
		obj.SetAnnotations(ann)
		_, err = ri.Create(ctx, obj, metav1.CreateOptions{FieldManager: e.cfg.FieldManager})
		if apierrors.IsAlreadyExists(err) && retry {
			// The cache is behind: judge the object as it is.
			e.again(ctx, p, r, rs)
			return
		}
		if err == nil {
			rs.Compliant, rs.Reason, rs.created = true, ReasonCreated, true
		}
	case template.Apply:
		if retry {
			// The apply carries the object's lists merged with the
			// template's: merge into the object as it is now, not as the
			// cache last saw it, so as not to drop an item just added.
			e.again(ctx, p, r, rs)
			return
		}
		var after *unstructured.Unstructured
		after, err = ri.Apply(ctx, rs.Name, rs.Write, metav1.ApplyOptions{FieldManager: e.cfg.FieldManager, Force: true})
		if err == nil {
			rs.Compliant, rs.Reason = true, ReasonUpdated
			if after.GetResourceVersion() == rs.Existing.GetResourceVersion() {
				// Nothing written: the differences were in form only.
				rs.Reason, rs.Diffs = template.ReasonFoundAsSpecified, nil
			}
		}
	case template.Update:
		var after *unstructured.Unstructured
		after, err = ri.Update(ctx, rs.Write, opts)
		if apierrors.IsConflict(err) && retry {
			e.again(ctx, p, r, rs)
			return
		}
		if err == nil {
			rs.Compliant, rs.Reason = true, ReasonUpdated
			if after.GetResourceVersion() == rs.Existing.GetResourceVersion() {
				rs.Reason, rs.Diffs = template.ReasonFoundAsSpecified, nil
			}
		}
	case template.Delete:
		uid := rs.Existing.GetUID()
		bg := metav1.DeletePropagationBackground
		err = ri.Delete(ctx, rs.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}, PropagationPolicy: &bg})
		if apierrors.IsNotFound(err) {
			err = nil
		}
		if err == nil {
			rs.Compliant, rs.Reason = true, ReasonDeleted
		}
	}
	if err != nil {
		rs.err = fmt.Errorf("%s: %w", rs.Action, err)
		e.log.Warn("could not enforce", "policy", keyOf(p), "action", rs.Action.String(),
			"resource", r.mapping.Resource.Resource, "object", describeName(rs.Namespace, rs.Name), "err", err)
		return
	}
	if rs.Reason == template.ReasonFoundAsSpecified {
		return // nothing was written
	}
	e.log.Info("enforced", "policy", keyOf(p), "action", rs.Action.String(),
		"resource", r.mapping.Resource.Resource, "object", describeName(rs.Namespace, rs.Name))
}

// again reads the object from the apiserver, judges it afresh, and acts
// once more.
func (e *Engine) again(ctx context.Context, p *fleetv1.Policy, r *run, rs *result) {
	fresh, err := apiReader{e.dyn}.objects(ctx, r.mapping.Resource, rs.Namespace, rs.Name)
	if err != nil {
		rs.err = err
		return
	}
	out := r.tmpl.Evaluate(rs.Namespace, fresh)
	for _, res := range out.Objects {
		if res.Name == rs.Name {
			rs.Result = res
			rs.created = res.Existing != nil && res.Existing.GetAnnotations()[template.AnnotationCreatedBy] == keyOf(p)
			break
		}
	}
	if !rs.Compliant {
		e.actOnce(ctx, p, r, rs, true, false)
	}
}

func (e *Engine) resource(r *run, namespace string) dynamic.ResourceInterface {
	ri := e.dyn.Resource(r.mapping.Resource)
	if namespace == "" {
		return ri
	}
	return ri.Namespace(namespace)
}
