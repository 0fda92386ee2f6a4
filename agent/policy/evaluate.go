package policy

import (
	"bytes"
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

// parsed is a template as parsed before, reused while its definition is
// the same: parsing is most of an evaluation's cost otherwise.
type parsed struct {
	ot   fleetv1.ObjectTemplate
	tmpl *template.Template
	err  error
}

func (a *parsed) same(ot *fleetv1.ObjectTemplate) bool {
	return a.ot.ComplianceType == ot.ComplianceType && a.ot.RecordDiff == ot.RecordDiff && bytes.Equal(a.ot.ObjectDefinition.Raw, ot.ObjectDefinition.Raw) &&
		a.ot.ObjectDefinition.Raw != nil
}

// parse parses a policy's templates, reusing those of cache (which it
// updates; nil: none) that did not change.
func parse(p *fleetv1.Policy, cache *[]parsed) []parsed {
	var old []parsed
	if cache != nil {
		old = *cache
	}
	out := make([]parsed, len(p.Spec.ObjectTemplates))
	for i := range p.Spec.ObjectTemplates {
		ot := &p.Spec.ObjectTemplates[i]
		if i < len(old) && old[i].same(ot) {
			out[i] = old[i]
			continue
		}
		t, err := template.Parse(*ot)
		out[i] = parsed{ot: *ot, tmpl: t, err: err}
	}
	if cache != nil {
		*cache = out
	}
	return out
}

// plan maps the kinds of a policy's parsed templates, and returns what the
// policy reads. A template that cannot be evaluated is marked pending with
// the reason; the others are not held back by it.
func (e *Engine) plan(ctx context.Context, p *fleetv1.Policy, templates []parsed) ([]*run, []interest) {
	runs := make([]*run, len(templates))
	var ints []interest
	var selErr error
	if p.Spec.NamespaceSelector != nil {
		_, selErr = parseSelector(p.Spec.NamespaceSelector)
	}
	selecting := false
	for i, pt := range templates {
		r := &run{index: i}
		runs[i] = r
		t := pt.tmpl
		if pt.err != nil {
			r.pending = "invalid object template: " + pt.err.Error()
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
