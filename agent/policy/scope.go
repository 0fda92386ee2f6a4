package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

var namespacesGVR = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}

// selector is a parsed namespaceSelector.
type selector struct {
	include, exclude []string
	labels           labels.Selector
}

// parseSelector checks the globs and the label selector, so that a bad one
// is reported whatever namespaces exist.
func parseSelector(s *fleetv1.PolicyNamespaceSelector) (*selector, error) {
	var errs []error
	for _, list := range []struct {
		name     string
		patterns []string
	}{{"include", s.Include}, {"exclude", s.Exclude}} {
		for _, p := range list.patterns {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("namespaceSelector: %s pattern %q: %w", list.name, p, err))
			}
		}
	}
	ls, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchLabels: s.MatchLabels, MatchExpressions: s.MatchExpressions})
	if err != nil {
		errs = append(errs, fmt.Errorf("namespaceSelector: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &selector{include: s.Include, exclude: s.Exclude, labels: ls}, nil
}

// pick returns the names of the namespaces the selector picks, sorted:
// those a glob of include names (any, when include is empty) and the label
// selector selects, but for those a glob of exclude names. Namespaces
// being deleted are left out, since nothing can be created in them.
func (s *selector) pick(namespaces []*unstructured.Unstructured) []string {
	var out []string
	for _, ns := range namespaces {
		name := ns.GetName()
		if phase, _, _ := unstructured.NestedString(ns.Object, "status", "phase"); phase == "Terminating" || ns.GetDeletionTimestamp() != nil {
			continue
		}
		if len(s.include) > 0 && !matchAny(s.include, name) || matchAny(s.exclude, name) {
			continue
		}
		if !s.labels.Matches(labels.Set(ns.GetLabels())) {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

func matchAny(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
