package testbed

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// KwokNodeAnnotation marks the nodes that the cluster's kwok manages. A node
// created with this annotation set to "fake" becomes Ready, and Pods bound to
// it become Running.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

var metav1GetOptions = metav1.GetOptions{}

// NodeName is the name of the i-th node (0-based) of a test-bed cluster.
func NodeName(cluster string, i int) string { return fmt.Sprintf("%s-node-%d", cluster, i) }

// createNodes creates opts.Nodes kwok nodes; existing ones are left as they are.
func createNodes(ctx context.Context, client kubernetes.Interface, opts ClusterOptions) error {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    quantityOr(opts.NodeCapacity, corev1.ResourceCPU, "8"),
		corev1.ResourceMemory: quantityOr(opts.NodeCapacity, corev1.ResourceMemory, "32Gi"),
		corev1.ResourcePods:   quantityOr(opts.NodeCapacity, corev1.ResourcePods, "110"),
	}
	for name, q := range opts.NodeCapacity {
		capacity[name] = q
	}
	for i := range opts.Nodes {
		name := NodeName(opts.Name, i)
		labels := map[string]string{
			"kubernetes.io/hostname": name,
			"kubernetes.io/os":       "linux",
			"kubernetes.io/arch":     "amd64",
			"type":                   "kwok",
		}
		for k, v := range opts.NodeLabels {
			labels[k] = v
		}
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        name,
				Labels:      labels,
				Annotations: map[string]string{KwokNodeAnnotation: "fake"},
			},
			Status: corev1.NodeStatus{
				Capacity:    capacity,
				Allocatable: capacity,
				// kwok keeps the addresses when both kinds are there, so every
				// node gets an InternalIP of its own.
				Addresses: []corev1.NodeAddress{
					{Type: corev1.NodeInternalIP, Address: nodeIP(i)},
					{Type: corev1.NodeHostName, Address: name},
				},
			},
		}
		if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %q: %w", name, err)
		}
	}
	return nil
}

// nodeIP is the InternalIP of the i-th node: 10.1.0.1, 10.1.0.2, … outside
// kwok's pod CIDR (10.0.0.0/16).
func nodeIP(i int) string {
	n := i + 1
	return fmt.Sprintf("10.%d.%d.%d", 1+n>>16, (n>>8)&0xff, n&0xff)
}

// readyNodes counts the nodes whose Ready condition is True.
func readyNodes(ctx context.Context, client kubernetes.Interface) (int, error) {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, node := range nodes.Items {
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				n++
			}
		}
	}
	return n, nil
}
