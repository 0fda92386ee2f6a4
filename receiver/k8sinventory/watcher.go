package k8sinventory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// errNotSynced is returned by scrapes before the informers have listed
// everything once, for instance while the apiserver is unreachable.
var errNotSynced = errors.New("kubernetes informer caches not synced yet (is the apiserver reachable?)")

// versionRefresh is how often the server version is asked again.
const versionRefresh = 5 * time.Minute

// watcher keeps the informer caches that scrapes read.
type watcher struct {
	client kubernetes.Interface
	resync time.Duration

	cancel  context.CancelFunc
	done    sync.WaitGroup
	synced  []func() bool
	nodes   corelisters.NodeLister
	nss     corelisters.NamespaceLister
	pods    corelisters.PodLister
	deploys appslisters.DeploymentLister
	sts     appslisters.StatefulSetLister
	dss     appslisters.DaemonSetLister

	mu          sync.Mutex
	version     *version.Info
	versionTime time.Time
}

// start starts the informers. It does not wait for them: an unreachable
// apiserver is retried by the informers and reported by scrapes.
func (w *watcher) start() error {
	f := informers.NewSharedInformerFactory(w.client, w.resync)
	// Keep only what scrapes read; a pod's spec and managed fields are most of
	// its size, and the agent's memory budget is tight.
	podInf := f.Core().V1().Pods()
	if err := podInf.Informer().SetTransform(slimPod); err != nil {
		return fmt.Errorf("set pod transform: %w", err)
	}
	w.nodes = f.Core().V1().Nodes().Lister()
	w.nss = f.Core().V1().Namespaces().Lister()
	w.pods = podInf.Lister()
	w.deploys = f.Apps().V1().Deployments().Lister()
	w.sts = f.Apps().V1().StatefulSets().Lister()
	w.dss = f.Apps().V1().DaemonSets().Lister()
	for _, inf := range []interface{ HasSynced() bool }{
		f.Core().V1().Nodes().Informer(), f.Core().V1().Namespaces().Informer(), podInf.Informer(),
		f.Apps().V1().Deployments().Informer(), f.Apps().V1().StatefulSets().Informer(), f.Apps().V1().DaemonSets().Informer(),
	} {
		w.synced = append(w.synced, inf.HasSynced)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	f.Start(ctx.Done())
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		<-ctx.Done()
		f.Shutdown()
	}()
	return nil
}

func (w *watcher) stop() {
	if w.cancel != nil {
		w.cancel()
		w.done.Wait()
	}
}

func (w *watcher) hasSynced() bool {
	for _, s := range w.synced {
		if !s() {
			return false
		}
	}
	return len(w.synced) > 0
}

// waitForSync waits up to timeout for every cache to be synced.
func (w *watcher) waitForSync(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for !w.hasSynced() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// serverVersion returns the apiserver's version, asked at most every
// versionRefresh; the last known one is kept when the question fails.
func (w *watcher) serverVersion() (*version.Info, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.version != nil && time.Since(w.versionTime) < versionRefresh {
		return w.version, nil
	}
	info, err := w.client.Discovery().ServerVersion()
	if err != nil {
		if w.version != nil {
			return w.version, nil
		}
		return nil, fmt.Errorf("get server version: %w", err)
	}
	w.version, w.versionTime = info, time.Now()
	return info, nil
}

// snapshot is one consistent read of the caches.
type snapshot struct {
	nodes        []*corev1.Node
	namespaces   []*corev1.Namespace
	pods         []*corev1.Pod
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	daemonSets   []*appsv1.DaemonSet
	version      *version.Info
}

func (w *watcher) snapshot() (*snapshot, error) {
	if !w.hasSynced() {
		return nil, errNotSynced
	}
	s := &snapshot{}
	var err error
	all := labels.Everything()
	if s.nodes, err = w.nodes.List(all); err != nil {
		return nil, err
	}
	if s.namespaces, err = w.nss.List(all); err != nil {
		return nil, err
	}
	if s.pods, err = w.pods.List(all); err != nil {
		return nil, err
	}
	if s.deployments, err = w.deploys.List(all); err != nil {
		return nil, err
	}
	if s.statefulSets, err = w.sts.List(all); err != nil {
		return nil, err
	}
	if s.daemonSets, err = w.dss.List(all); err != nil {
		return nil, err
	}
	s.version, err = w.serverVersion()
	return s, err
}

// slimPod keeps the fields scrapes read.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone on delete
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: p.Name, Namespace: p.Namespace, UID: p.UID,
			ResourceVersion: p.ResourceVersion, OwnerReferences: p.OwnerReferences,
		},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName},
		Status: corev1.PodStatus{Phase: p.Status.Phase},
	}, nil
}
