package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestDeploymentRunsOnKwokNodes proves the test bed is a working Kubernetes:
// in each of two clusters the kwok nodes are Ready, and a Deployment becomes a
// ReplicaSet (controller manager) whose Pods are scheduled (scheduler) and
// Running (kwok).
func TestDeploymentRunsOnKwokNodes(t *testing.T) {
	t.Parallel()
	const nodes = 2
	clusters := testbed.StartClusters(t, "e2e-deploy", 2, testbed.ClusterOptions{Nodes: nodes})
	for _, c := range clusters {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			client := kubernetes.NewForConfigOrDie(c.RESTConfig)

			nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatalf("list nodes: %v", err)
			}
			if len(nodeList.Items) != nodes {
				t.Fatalf("cluster has %d nodes, want %d", len(nodeList.Items), nodes)
			}
			for _, n := range nodeList.Items {
				if !nodeReady(n) {
					t.Errorf("node %s is not Ready: %+v", n.Name, n.Status.Conditions)
				}
			}

			dep := nginxDeployment("web", 3)
			if _, err := client.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
				t.Fatalf("create deployment: %v", err)
			}
			var running []corev1.Pod
			pollUntil(ctx, t, "3 Running pods of deployment web", func() (bool, string) {
				pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
				if err != nil {
					return false, err.Error()
				}
				running = running[:0]
				for _, p := range pods.Items {
					if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" && p.Status.PodIP != "" {
						running = append(running, p)
					}
				}
				return len(running) == 3, fmt.Sprintf("%d of %d pods running", len(running), len(pods.Items))
			})
			pollUntil(ctx, t, "deployment web to report 3 available replicas", func() (bool, string) {
				d, err := client.AppsV1().Deployments("default").Get(ctx, "web", metav1.GetOptions{})
				if err != nil {
					return false, err.Error()
				}
				return d.Status.AvailableReplicas == 3, fmt.Sprintf("available=%d ready=%d", d.Status.AvailableReplicas, d.Status.ReadyReplicas)
			})
			for _, p := range running {
				if len(p.OwnerReferences) == 0 || p.OwnerReferences[0].Kind != "ReplicaSet" {
					t.Errorf("pod %s is not owned by a ReplicaSet: %+v", p.Name, p.OwnerReferences)
				}
			}
		})
	}
}

func nginxDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
			},
		},
	}
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// pollUntil checks cond every 200ms until it holds or ctx ends; on timeout
// the test fails with the last state cond reported.
func pollUntil(ctx context.Context, t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; last state: %s", what, ctx.Err(), last)
		case <-tick.C:
		}
	}
}
