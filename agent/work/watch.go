package work

import (
	"context"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// watches run one informer per resource the agent applied, over the
// objects labelled LabelApplied only, and turn a change of an applied
// object (someone edited or deleted it, or its status moved) into a sync of
// the works that applied it. The informers keep names and resource versions
// only.
type watches struct {
	dyn     dynamic.Interface
	enqueue func(work string)

	mu        sync.Mutex
	informers map[schema.GroupVersionResource]context.CancelFunc
	owners    map[objectKey][]string // object → works that applied it
}

type objectKey struct {
	gr        schema.GroupResource
	namespace string
	name      string
}

func newWatches(dyn dynamic.Interface, enqueue func(string)) *watches {
	return &watches{dyn: dyn, enqueue: enqueue, informers: map[schema.GroupVersionResource]context.CancelFunc{}, owners: map[objectKey][]string{}}
}

// track makes the objects of rec known as rec's, and watches their resources.
func (w *watches) track(ctx context.Context, work string, objs []appliedObject) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, works := range w.owners {
		if i := indexOf(works, work); i >= 0 {
			works = append(works[:i:i], works[i+1:]...)
			if len(works) == 0 {
				delete(w.owners, k)
			} else {
				w.owners[k] = works
			}
		}
	}
	for _, o := range objs {
		k := objectKey{gr: o.gvr().GroupResource(), namespace: o.Namespace, name: o.Name}
		if indexOf(w.owners[k], work) < 0 {
			w.owners[k] = append(w.owners[k], work)
		}
		if _, ok := w.informers[o.gvr()]; !ok {
			w.informers[o.gvr()] = w.start(ctx, o.gvr())
		}
	}
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func (w *watches) start(ctx context.Context, gvr schema.GroupVersionResource) context.CancelFunc {
	ctx, cancel := context.WithCancel(ctx)
	ri := w.dyn.Resource(gvr)
	sel := LabelApplied + "=true"
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel
			return ri.Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0, cache.Indexers{})
	_ = inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		slim := &unstructured.Unstructured{Object: map[string]any{}}
		slim.SetAPIVersion(u.GetAPIVersion())
		slim.SetKind(u.GetKind())
		slim.SetNamespace(u.GetNamespace())
		slim.SetName(u.GetName())
		slim.SetUID(u.GetUID())
		slim.SetResourceVersion(u.GetResourceVersion())
		return slim, nil
	})
	notify := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return
		}
		w.mu.Lock()
		works := append([]string(nil), w.owners[objectKey{gr: gvr.GroupResource(), namespace: u.GetNamespace(), name: u.GetName()}]...)
		w.mu.Unlock()
		for _, work := range works {
			w.enqueue(work)
		}
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(*unstructured.Unstructured); ok {
				if n, ok := obj.(*unstructured.Unstructured); ok && o.GetResourceVersion() == n.GetResourceVersion() {
					return
				}
			}
			notify(obj)
		},
		DeleteFunc: notify,
	})
	go inf.RunWithContext(ctx)
	return cancel
}

// stop ends every informer.
func (w *watches) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for gvr, cancel := range w.informers {
		cancel()
		delete(w.informers, gvr)
	}
}
