package k8sinventory

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// requests is what containers request: CPU in millicores, memory in bytes.
type requests struct{ cpuMilli, memory int64 }

func (r *requests) add(o requests) { r.cpuMilli += o.cpuMilli; r.memory += o.memory }

// podRequests is the sum of the CPU and memory requests of p's containers.
// Init containers and pod overhead are not counted: the scheduler's rule
// (k8s.io/component-helpers/resource.PodRequests) is not in the module graph,
// and for pods without a larger init container or a RuntimeClass overhead the
// two agree.
func podRequests(p *corev1.Pod) requests {
	var r requests
	for i := range p.Spec.Containers {
		l := p.Spec.Containers[i].Resources.Requests
		if q, ok := l[corev1.ResourceCPU]; ok {
			r.cpuMilli += q.MilliValue()
		}
		if q, ok := l[corev1.ResourceMemory]; ok {
			r.memory += q.Value()
		}
	}
	return r
}

// podInfo is what the pod cache holds of a pod: what scrapes read. It is a
// quarter of the size of even a slimmed corev1.Pod (320 bytes against 1,280:
// the spec and status structs are large when empty) and keeps no per-container
// slices or maps, and the cache holds every pod of the cluster.
type podInfo struct {
	// ObjectMeta holds the name, namespace, UID and resourceVersion only;
	// it makes podInfo a metav1.Object for the informer's keys.
	metav1.ObjectMeta
	nodeName string
	phase    corev1.PodPhase
	requests requests // summed over the containers (podRequests)
	restarts int64    // summed over the containers' statuses
	waiting  []string // the reasons of the containers waiting
}

// slimPod is the pod informer's transform: it turns a pod into a podInfo.
func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone on delete
	}
	info := &podInfo{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion},
		nodeName:   p.Spec.NodeName,
		phase:      p.Status.Phase,
		requests:   podRequests(p),
	}
	for i := range p.Status.ContainerStatuses {
		cs := &p.Status.ContainerStatuses[i]
		info.restarts += int64(cs.RestartCount)
		if cs.State.Waiting != nil {
			info.waiting = append(info.waiting, cs.State.Waiting.Reason)
		}
	}
	return info, nil
}

// holdsRequests says whether p's requests count towards its node's: it is
// bound to a node and has not terminated.
func holdsRequests(p *podInfo) bool {
	return p.nodeName != "" && p.phase != corev1.PodSucceeded && p.phase != corev1.PodFailed
}

// podTotals is what the cluster's pods add up to, for one scrape.
type podTotals struct {
	phases   map[string]map[corev1.PodPhase]int64 // namespace → phase → pods
	restarts map[string]int64                     // namespace → container restarts
	waiting  map[string]map[string]int64          // namespace → reason → waiting containers
	nodes    map[string]requests                  // node name → requests of the pods it holds
	cluster  requests                             // requests of every scheduled pod
}

// totalPods adds up pods; every namespace given appears in phases and
// restarts, zeros included.
func totalPods(namespaces []*corev1.Namespace, pods []*podInfo) *podTotals {
	t := &podTotals{
		phases:   map[string]map[corev1.PodPhase]int64{},
		restarts: map[string]int64{},
		waiting:  map[string]map[string]int64{},
		nodes:    map[string]requests{},
	}
	for _, ns := range namespaces {
		t.phases[ns.Name] = map[corev1.PodPhase]int64{}
		t.restarts[ns.Name] = 0
	}
	for _, p := range pods {
		if t.phases[p.Namespace] == nil { // a namespace not listed yet
			t.phases[p.Namespace] = map[corev1.PodPhase]int64{}
			t.restarts[p.Namespace] = 0
		}
		phase := p.phase
		if phase == "" {
			phase = corev1.PodPending
		}
		t.phases[p.Namespace][phase]++
		t.restarts[p.Namespace] += p.restarts
		for _, reason := range p.waiting {
			if t.waiting[p.Namespace] == nil {
				t.waiting[p.Namespace] = map[string]int64{}
			}
			t.waiting[p.Namespace][reason]++
		}
		if holdsRequests(p) {
			n := t.nodes[p.nodeName]
			n.add(p.requests)
			t.nodes[p.nodeName] = n
			t.cluster.add(p.requests)
		}
	}
	return t
}
