package k8sinventory

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informers' transforms keep what scrapes read and drop the rest
// (managed fields, labels, annotations, specs, node images) before objects
// enter the caches, which hold every node, namespace, pod and workload of the
// cluster. slimPod is in pods.go.

// slimMeta keeps an object's identity.
func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion}
}

// capacityResources are the resources capacityOf reads.
var capacityResources = []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourcePods}

func slimResources(l corev1.ResourceList) corev1.ResourceList {
	if l == nil {
		return nil
	}
	out := make(corev1.ResourceList, len(capacityResources))
	for _, name := range capacityResources {
		if q, ok := l[name]; ok {
			out[name] = q
		}
	}
	return out
}

func slimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil // a tombstone on delete
	}
	slim := &corev1.Node{ObjectMeta: slimMeta(&n.ObjectMeta)}
	slim.Status.Allocatable = slimResources(n.Status.Allocatable)
	slim.Status.Capacity = slimResources(n.Status.Capacity)
	if len(n.Status.Conditions) > 0 {
		slim.Status.Conditions = make([]corev1.NodeCondition, len(n.Status.Conditions))
		for i, c := range n.Status.Conditions {
			slim.Status.Conditions[i] = corev1.NodeCondition{Type: c.Type, Status: c.Status}
		}
	}
	return slim, nil
}

func slimNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	return &corev1.Namespace{ObjectMeta: slimMeta(&ns.ObjectMeta), Status: corev1.NamespaceStatus{Phase: ns.Status.Phase}}, nil
}

func slimDeployment(obj any) (any, error) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok {
		return obj, nil
	}
	return &appsv1.Deployment{
		ObjectMeta: slimMeta(&d.ObjectMeta),
		Spec:       appsv1.DeploymentSpec{Replicas: d.Spec.Replicas},
		Status:     appsv1.DeploymentStatus{AvailableReplicas: d.Status.AvailableReplicas},
	}, nil
}

func slimStatefulSet(obj any) (any, error) {
	st, ok := obj.(*appsv1.StatefulSet)
	if !ok {
		return obj, nil
	}
	return &appsv1.StatefulSet{
		ObjectMeta: slimMeta(&st.ObjectMeta),
		Spec:       appsv1.StatefulSetSpec{Replicas: st.Spec.Replicas},
		Status:     appsv1.StatefulSetStatus{ReadyReplicas: st.Status.ReadyReplicas},
	}, nil
}

func slimDaemonSet(obj any) (any, error) {
	ds, ok := obj.(*appsv1.DaemonSet)
	if !ok {
		return obj, nil
	}
	return &appsv1.DaemonSet{
		ObjectMeta: slimMeta(&ds.ObjectMeta),
		Status: appsv1.DaemonSetStatus{
			DesiredNumberScheduled: ds.Status.DesiredNumberScheduled,
			CurrentNumberScheduled: ds.Status.CurrentNumberScheduled,
			NumberReady:            ds.Status.NumberReady,
		},
	}, nil
}
