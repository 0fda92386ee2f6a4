package k8sinventory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/version"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/fleetpulse/fleetpulse/receiver/internal/kubeapi"
)

// errNotSynced is returned by scrapes before the informers have listed
// everything once, for instance while the apiserver is unreachable.
var errNotSynced = errors.New("kubernetes informer caches not synced yet (is the apiserver reachable?)")

// versionRefresh is how often the server version is asked again.
const versionRefresh = 5 * time.Minute

// watcher keeps the informer caches that scrapes read.
type watcher struct {
	client *kubeapi.Client
	resync time.Duration

	cancel  context.CancelFunc
	done    sync.WaitGroup
	synced  []func() bool
	nodes   corelisters.NodeLister
	nss     corelisters.NamespaceLister
	pods    cache.Indexer // of *podInfo
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
	informer := func(r kubeapi.Resource) cache.SharedIndexInformer { return w.client.Informer(r, "", w.resync) }
	nodes, nss, pods := informer(kubeapi.Nodes), informer(kubeapi.Namespaces), informer(kubeapi.Pods)
	deploys, sts, dss := informer(kubeapi.Deployments), informer(kubeapi.StatefulSets), informer(kubeapi.DaemonSets)
	// Keep only what scrapes read (slim.go): the caches hold the whole
	// cluster, and the agent's memory budget is tight.
	for _, t := range []struct {
		inf  cache.SharedIndexInformer
		slim cache.TransformFunc
		kind string
	}{
		{nodes, slimNode, "node"}, {nss, slimNamespace, "namespace"}, {pods, slimPod, "pod"},
		{deploys, slimDeployment, "deployment"}, {sts, slimStatefulSet, "statefulset"}, {dss, slimDaemonSet, "daemonset"},
	} {
		if err := t.inf.SetTransform(t.slim); err != nil {
			return fmt.Errorf("set %s transform: %w", t.kind, err)
		}
	}
	w.nodes = corelisters.NewNodeLister(nodes.GetIndexer())
	w.nss = corelisters.NewNamespaceLister(nss.GetIndexer())
	w.pods = pods.GetIndexer()
	w.deploys = appslisters.NewDeploymentLister(deploys.GetIndexer())
	w.sts = appslisters.NewStatefulSetLister(sts.GetIndexer())
	w.dss = appslisters.NewDaemonSetLister(dss.GetIndexer())
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for _, inf := range []cache.SharedIndexInformer{nodes, nss, pods, deploys, sts, dss} {
		w.synced = append(w.synced, inf.HasSynced)
		w.done.Add(1)
		go func() {
			defer w.done.Done()
			inf.RunWithContext(ctx)
		}()
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := w.client.ServerVersion(ctx)
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
	pods         []*podInfo
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
	objs := w.pods.List()
	s.pods = make([]*podInfo, 0, len(objs))
	for _, obj := range objs {
		if p, ok := obj.(*podInfo); ok {
			s.pods = append(s.pods, p)
		}
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
