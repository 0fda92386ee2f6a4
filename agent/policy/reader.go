package policy

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// reader reads the objects a template is about: the named object (none if
// it does not exist), or every object of the resource in namespace ("" for
// all, or for a cluster-scoped resource).
type reader interface {
	objects(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) ([]*unstructured.Unstructured, error)
}

// cacheReader reads the watches' caches, as evaluations do; objects from it
// are shared and never modified.
type cacheReader struct {
	w       *watches
	timeout time.Duration
}

func (r cacheReader) objects(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) ([]*unstructured.Unstructured, error) {
	idx, err := r.w.cache(ctx, gvr, r.timeout)
	if err != nil {
		return nil, err
	}
	return cachedObjects(idx, namespace, name), nil
}

// apiReader reads the apiserver, as pruning does (the policy it prunes no
// longer has watches).
type apiReader struct{ dyn dynamic.Interface }

func (r apiReader) objects(ctx context.Context, gvr schema.GroupVersionResource, namespace, name string) ([]*unstructured.Unstructured, error) {
	ri := r.dyn.Resource(gvr).Namespace(namespace)
	if name != "" {
		o, err := ri.Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("get %s %s: %w", gvr.GroupResource(), describeName(namespace, name), err)
		}
		return []*unstructured.Unstructured{o}, nil
	}
	l, err := ri.List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	out := make([]*unstructured.Unstructured, len(l.Items))
	for i := range l.Items {
		out[i] = &l.Items[i]
	}
	return out, nil
}

func describeName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
