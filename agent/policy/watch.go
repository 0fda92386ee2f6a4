package policy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
)

// interest is what a policy reads: objects of a resource, in a namespace
// and with a name, each empty for any.
type interest struct {
	gvr             schema.GroupVersionResource
	namespace, name string
}

// watches keep one informer per resource that some policy's templates
// read, started when the first policy needs it and stopped when the last
// lets it go. Evaluations read their caches; a change of an object makes
// the policies interested in it evaluate again.
type watches struct {
	dyn     dynamic.Interface
	log     *slog.Logger
	enqueue func(key string)

	mu        sync.Mutex
	ctx       context.Context // the engine's run; informers stop with it
	informers map[schema.GroupVersionResource]*informer
	users     map[string][]interest               // policy key → what it reads
	refs      map[schema.GroupVersionResource]int // policies reading each resource
}

// informer is one resource's cache and what its lists went through.
type informer struct {
	gvr    schema.GroupVersionResource
	inf    cache.SharedIndexInformer
	cancel context.CancelFunc
	synced chan struct{} // closed at the first complete list
	failed chan struct{} // closed at the first failed list or watch

	mu      sync.Mutex
	lastErr error
}

func newWatches(dyn dynamic.Interface, log *slog.Logger, enqueue func(string)) *watches {
	return &watches{dyn: dyn, log: log, enqueue: enqueue,
		informers: map[schema.GroupVersionResource]*informer{}, users: map[string][]interest{},
		refs: map[schema.GroupVersionResource]int{}}
}

// start lets informers run under ctx from now on.
func (w *watches) start(ctx context.Context) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ctx = ctx
}

// use records what a policy reads, starts the informers it needs and stops
// those no policy needs any more.
func (w *watches) use(key string, ints []interest) {
	w.mu.Lock()
	defer w.mu.Unlock()
	gvrs := resourcesOf(ints)
	if old := w.users[key]; !slices.Equal(old, ints) {
		// Count the new first, so that a resource in both never drops to
		// zero on the way.
		for _, gvr := range gvrs {
			w.refs[gvr]++
		}
		for _, gvr := range resourcesOf(old) {
			if w.refs[gvr]--; w.refs[gvr] > 0 {
				continue
			}
			delete(w.refs, gvr)
			if inf := w.informers[gvr]; inf != nil {
				inf.cancel()
				delete(w.informers, gvr)
				w.log.Debug("stopped watching", "resource", gvr.String())
			}
		}
		if len(ints) == 0 {
			delete(w.users, key)
		} else {
			w.users[key] = ints
		}
	}
	if w.ctx == nil {
		return
	}
	for _, gvr := range gvrs {
		if _, ok := w.informers[gvr]; !ok {
			w.informers[gvr] = w.startInformer(gvr)
		}
	}
}

// resourcesOf returns the resources of ints, each once.
func resourcesOf(ints []interest) []schema.GroupVersionResource {
	var out []schema.GroupVersionResource
	for _, in := range ints {
		if !slices.Contains(out, in.gvr) {
			out = append(out, in.gvr)
		}
	}
	return out
}

// release forgets a policy.
func (w *watches) release(key string) { w.use(key, nil) }

// stop ends every informer.
func (w *watches) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for gvr, inf := range w.informers {
		inf.cancel()
		delete(w.informers, gvr)
	}
	w.ctx = nil
}

func (w *watches) startInformer(gvr schema.GroupVersionResource) *informer {
	ctx, cancel := context.WithCancel(w.ctx)
	ri := w.dyn.Resource(gvr)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return ri.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return ri.Watch(ctx, o)
		},
	}
	inf := &informer{gvr: gvr, cancel: cancel, synced: make(chan struct{}), failed: make(chan struct{}),
		inf: cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 0,
			cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})}
	// Managed fields are half an object's size and never compared.
	_ = inf.inf.SetTransform(func(obj any) (any, error) {
		if u, ok := obj.(*unstructured.Unstructured); ok {
			u.SetManagedFields(nil)
		}
		return obj, nil
	})
	var once sync.Once
	_ = inf.inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		// The reflector says "failed to list *unstructured.Unstructured:
		// ..."; the apiserver's own words are clearer.
		var status apierrors.APIStatus
		if errors.As(err, &status) {
			err = status.(error)
		}
		inf.mu.Lock()
		repeated := inf.lastErr != nil && inf.lastErr.Error() == err.Error()
		inf.lastErr = err
		inf.mu.Unlock()
		once.Do(func() { close(inf.failed) })
		if !repeated {
			w.log.Warn("list or watch failed; retrying", "resource", gvr.String(), "err", err)
		}
	})
	notify := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if u, ok := obj.(*unstructured.Unstructured); ok {
			w.notify(gvr, u.GetNamespace(), u.GetName())
		}
	}
	_, _ = inf.inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: notify,
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
	go inf.inf.RunWithContext(ctx)
	go func() {
		if !cache.WaitForCacheSync(ctx.Done(), inf.inf.HasSynced) {
			return
		}
		inf.mu.Lock()
		inf.lastErr = nil
		inf.mu.Unlock()
		close(inf.synced)
		// An empty list has no objects to announce: the policies that
		// waited for it evaluate again all the same.
		w.notify(gvr, "", "")
	}()
	w.log.Debug("watching", "resource", gvr.String())
	return inf
}

// notify enqueues the policies interested in an object ("" namespace and
// name: in any object of the resource).
func (w *watches) notify(gvr schema.GroupVersionResource, namespace, name string) {
	w.mu.Lock()
	var keys []string
	for key, ints := range w.users {
		for _, in := range ints {
			if in.gvr == gvr && (name == "" || in.namespace == "" || in.namespace == namespace) && (name == "" || in.name == "" || in.name == name) {
				keys = append(keys, key)
				break
			}
		}
	}
	w.mu.Unlock()
	for _, k := range keys {
		w.enqueue(k)
	}
}

// cache returns the resource's cache once it holds a complete list, or
// why it does not: the list failed (forbidden, for one), or it took longer
// than timeout.
func (w *watches) cache(ctx context.Context, gvr schema.GroupVersionResource, timeout time.Duration) (cache.Indexer, error) {
	w.mu.Lock()
	inf := w.informers[gvr]
	w.mu.Unlock()
	if inf == nil {
		return nil, fmt.Errorf("%s is not watched", gvr.Resource)
	}
	select {
	case <-inf.synced:
		return inf.inf.GetIndexer(), nil
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-inf.synced:
		return inf.inf.GetIndexer(), nil
	case <-inf.failed:
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-inf.synced:
		return inf.inf.GetIndexer(), nil
	default:
	}
	inf.mu.Lock()
	err := inf.lastErr
	inf.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", gvr.GroupResource(), err)
	}
	return nil, fmt.Errorf("list %s: no complete list within %s yet", gvr.GroupResource(), timeout)
}

// cachedObjects reads a resource's cache: the named object, or every object
// in namespace ("" for all).
func cachedObjects(idx cache.Indexer, namespace, name string) []*unstructured.Unstructured {
	if name != "" {
		key := name
		if namespace != "" {
			key = namespace + "/" + name
		}
		obj, ok, _ := idx.GetByKey(key)
		if !ok {
			return nil
		}
		return []*unstructured.Unstructured{obj.(*unstructured.Unstructured)}
	}
	var objs []any
	if namespace == "" {
		objs = idx.List()
	} else {
		objs, _ = idx.ByIndex(cache.NamespaceIndex, namespace)
	}
	out := make([]*unstructured.Unstructured, 0, len(objs))
	for _, o := range objs {
		out = append(out, o.(*unstructured.Unstructured))
	}
	slices.SortFunc(out, func(a, b *unstructured.Unstructured) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}
