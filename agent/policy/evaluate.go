package policy

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// run is one template's evaluation.
type run struct {
	index   int
	tmpl    *template.Template
	mapping *meta.RESTMapping
	// scopes are the namespaces evaluated, or "" for a cluster-scoped kind.
	scopes []string
	// selects: the namespaces come from the policy's namespaceSelector.
	selects bool
	// pending, when set, is why the template cannot be evaluated.
	pending string
	results []result
}

// result is the verdict on one object, after enforcement.
type result struct {
	template.Result
	// err is why enforcing failed.
	err error
	// created: the policy created the object (now, or before).
	created bool
}

// plan parses a policy's templates and maps their kinds, and returns what
// the policy reads. A template that cannot be evaluated is marked pending
// with the reason; the others are not held back by it.
func (e *Engine) plan(ctx context.Context, p *fleetv1.Policy) ([]*run, []interest) {
	runs := make([]*run, len(p.Spec.ObjectTemplates))
	var ints []interest
	var selErr error
	if p.Spec.NamespaceSelector != nil {
		_, selErr = parseSelector(p.Spec.NamespaceSelector)
	}
	selecting := false
	for i, ot := range p.Spec.ObjectTemplates {
		r := &run{index: i}
		runs[i] = r
		t, err := template.Parse(ot)
		if err != nil {
			r.pending = "invalid object template: " + err.Error()
			continue
		}
		r.tmpl = t
		m, err := e.mapper.Mapping(ctx, t.GVK)
		if err != nil {
			if meta.IsNoMatchError(err) {
				r.pending = fmt.Sprintf("kind %s of apiVersion %s is not served by the cluster", t.GVK.Kind, t.GVK.GroupVersion())
			} else {
				r.pending = fmt.Sprintf("map kind %s of apiVersion %s: %v", t.GVK.Kind, t.GVK.GroupVersion(), err)
			}
			continue
		}
		r.mapping = m
		in := interest{gvr: m.Resource, name: t.Name}
		switch {
		case m.Scope.Name() != meta.RESTScopeNameNamespace:
			r.scopes = []string{""}
		case t.Namespace != "":
			r.scopes, in.namespace = []string{t.Namespace}, t.Namespace
		case p.Spec.NamespaceSelector == nil:
			r.pending = fmt.Sprintf("%s is namespaced, but the template names no namespace and the policy has no namespaceSelector", t.GVK.Kind)
			continue
		case selErr != nil:
			r.pending = selErr.Error()
			continue
		default:
			r.selects, selecting = true, true
		}
		ints = append(ints, in)
	}
	if selecting {
		ints = append(ints, interest{gvr: namespacesGVR})
	}
	return runs, ints
}

// scope fills in the namespaces of templates that take them from the
// namespaceSelector.
func (e *Engine) scope(ctx context.Context, p *fleetv1.Policy, runs []*run, rd reader) {
	var picked []string
	var err error
	done := false
	for _, r := range runs {
		if !r.selects || r.pending != "" {
			continue
		}
		if !done {
			done = true
			var sel *selector
			if sel, err = parseSelector(p.Spec.NamespaceSelector); err == nil {
				var nss []*unstructured.Unstructured
				if nss, err = rd.objects(ctx, namespacesGVR, "", ""); err == nil {
					picked = sel.pick(nss)
				}
			}
		}
		if err != nil {
			r.pending = err.Error()
			continue
		}
		r.scopes = picked
	}
}

// check evaluates one template in each of its scopes and, when enforce is
// set, makes the cluster match.
func (e *Engine) check(ctx context.Context, p *fleetv1.Policy, r *run, rd reader, enforce bool) {
	for _, ns := range r.scopes {
		found, err := rd.objects(ctx, r.mapping.Resource, ns, r.tmpl.Name)
		if err != nil {
			r.pending, r.results = err.Error(), nil
			return
		}
		out := r.tmpl.Evaluate(ns, found)
		for _, res := range out.Objects {
			rs := result{Result: res}
			if res.Existing != nil {
				rs.created = res.Existing.GetAnnotations()[template.AnnotationCreatedBy] == keyOf(p)
			}
			if !res.Compliant {
				e.act(ctx, p, r, &rs, enforce)
			}
			r.results = append(r.results, rs)
		}
	}
}

// verdict is the template's state from its results.
func (r *run) verdict() fleetv1.ComplianceState {
	if r.pending != "" {
		return fleetv1.Pending
	}
	for _, rs := range r.results {
		if !rs.Compliant {
			return fleetv1.NonCompliant
		}
	}
	return fleetv1.Compliant
}
