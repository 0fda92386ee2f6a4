package k8sinventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/receiver/k8sinventory/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestInventoryFollowsTheCluster runs the receiver against a real cluster and
// checks exact values as the cluster changes: nodes added, a Deployment
// created and scaled.
func TestInventoryFollowsTheCluster(t *testing.T) {
	t.Parallel()
	c := testbed.StartClusters(t, "inv", 1, testbed.ClusterOptions{
		Nodes: 2,
		NodeCapacity: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("4"), corev1.ResourceMemory: resource.MustParse("8Gi"), corev1.ResourcePods: resource.MustParse("50"),
		},
	})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)

	cfg := createDefaultConfig()
	cfg.AuthType, cfg.Kubeconfig = AuthKubeconfig, c.KubeconfigPath
	cfg.CollectionInterval = 200 * time.Millisecond
	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rcv.Shutdown(context.Background()) })

	waitFor(t, sink, map[string]float64{
		`k8s.cluster.node.count{k8s.node.condition.ready=true}`:                          2,
		`k8s.cluster.node.count{k8s.node.condition.ready=false}`:                         0,
		`k8s.cluster.allocatable.cpu{}`:                                                  8,
		`k8s.cluster.allocatable.memory{}`:                                               16 << 30,
		`k8s.cluster.capacity.pods{}`:                                                    100,
		`k8s.cluster.info{k8s.cluster.platform=linux/amd64,k8s.cluster.version=v1.35.4}`: 1,
		`k8s.node.allocatable.cpu{} k8s.node.name=inv-0-node-1`:                          4,
		`k8s.node.condition.status{k8s.node.condition.status=true,k8s.node.condition.type=Ready} k8s.node.name=inv-0-node-0`: 1,
		`k8s.namespace.phase{k8s.namespace.phase=active} k8s.namespace.name=kube-system`:                                     1,
	})

	ctx := context.Background()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "api"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "team-a"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "api", Image: "api:1"}}},
			},
		},
	}
	if _, err := client.AppsV1().Deployments("team-a").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	podSpec := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "node-agent"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "a", Image: "a:1"}}},
	}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "node-agent", Namespace: "team-a"},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: podSpec.Labels}, Template: podSpec},
	}
	if _, err := client.AppsV1().DaemonSets("team-a").Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dbSpec := podSpec.DeepCopy()
	dbSpec.Labels = map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "team-a"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: dbSpec.Labels}, Template: *dbSpec,
		},
	}
	if _, err := client.AppsV1().StatefulSets("team-a").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, sink, map[string]float64{
		`k8s.daemonset.node.desired_scheduled{} k8s.daemonset.name=node-agent,k8s.namespace.name=team-a`: 2,
		`k8s.daemonset.node.ready{} k8s.daemonset.name=node-agent,k8s.namespace.name=team-a`:             2,
		`k8s.statefulset.pod.desired{} k8s.namespace.name=team-a,k8s.statefulset.name=db`:                2,
		`k8s.statefulset.pod.ready{} k8s.namespace.name=team-a,k8s.statefulset.name=db`:                  2,
		`k8s.cluster.pod.count{k8s.namespace.name=team-a,k8s.pod.status.phase=running}`:                  3 + 2 + 2,
		`k8s.cluster.pod.count{k8s.namespace.name=team-a,k8s.pod.status.phase=pending}`:                  0,
		`k8s.deployment.pod.desired{} k8s.deployment.name=api,k8s.namespace.name=team-a`:                 3,
		`k8s.deployment.pod.available{} k8s.deployment.name=api,k8s.namespace.name=team-a`:               3,
	})

	if _, err := client.AppsV1().Deployments("team-a").Patch(ctx, "api", "application/merge-patch+json", []byte(`{"spec":{"replicas":1}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "inv-0-node-extra", Annotations: map[string]string{testbed.KwokNodeAnnotation: "fake"}},
		Status: corev1.NodeStatus{Allocatable: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("2500m"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("10"),
		}},
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			d, _ := client.AppsV1().Deployments("team-a").Get(ctx, "api", metav1.GetOptions{})
			pods, _ := client.CoreV1().Pods("team-a").List(ctx, metav1.ListOptions{})
			t.Logf("deployment api status from the API: %+v", d.Status)
			for _, p := range pods.Items {
				t.Logf("pod %s phase=%s node=%s deleting=%v", p.Name, p.Status.Phase, p.Spec.NodeName, p.DeletionTimestamp != nil)
			}
		}
	})
	waitFor(t, sink, map[string]float64{
		`k8s.cluster.pod.count{k8s.namespace.name=team-a,k8s.pod.status.phase=running}`:                  1 + 3 + 2,
		`k8s.daemonset.node.desired_scheduled{} k8s.daemonset.name=node-agent,k8s.namespace.name=team-a`: 3,
		`k8s.deployment.pod.desired{} k8s.deployment.name=api,k8s.namespace.name=team-a`:                 1,
		`k8s.deployment.pod.available{} k8s.deployment.name=api,k8s.namespace.name=team-a`:               1,
		`k8s.cluster.node.count{k8s.node.condition.ready=true}`:                                          3,
		`k8s.cluster.allocatable.cpu{}`:                                                                  10.5,
	})
	if got := countPerPodSeries(sink.AllMetrics()[len(sink.AllMetrics())-1]); got != 0 {
		t.Errorf("%d per-pod series emitted with pod_metrics off", got)
	}
}

func TestUnreachableAPIServerIsNotFatal(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig()
	cfg.AuthType = AuthKubeconfig
	cfg.Kubeconfig = writeKubeconfig(t, "https://127.0.0.1:1")
	cfg.InitialSyncTimeout = 100 * time.Millisecond
	cfg.CollectionInterval = 50 * time.Millisecond
	sink := new(consumertest.MetricsSink)
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatalf("Start with an unreachable apiserver = %v, want nil (retried, not fatal)", err)
	}
	if err := rcv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := sink.DataPointCount(); n != 0 {
		t.Errorf("%d data points emitted without a reachable apiserver", n)
	}
}

func TestMissingKubeconfigFailsStartNamingIt(t *testing.T) {
	t.Parallel()
	cfg := createDefaultConfig()
	cfg.AuthType, cfg.Kubeconfig = AuthKubeconfig, "/nonexistent/kubeconfig"
	rcv, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, new(consumertest.MetricsSink))
	if err != nil {
		t.Fatal(err)
	}
	err = rcv.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("Start = %v, want an error naming the kubeconfig", err)
	}
}

// waitFor polls the sink's latest scrape until every series has its value.
func waitFor(t *testing.T, sink *consumertest.MetricsSink, want map[string]float64) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() error {
		all := sink.AllMetrics()
		if len(all) == 0 {
			return errors.New("no scrape yet")
		}
		got := flatten(all[len(all)-1])
		var wrong []error
		for k, v := range want {
			if g, found := got[k]; !found || g != v {
				wrong = append(wrong, fmt.Errorf("%s = %v (present %v), want %v", k, g, found, v))
			}
		}
		return errors.Join(wrong...)
	})
}

// flatten keys each data point as name{point attrs} resource attrs, with
// uid attributes left out so keys are predictable.
func flatten(md pmetric.Metrics) map[string]float64 {
	out := map[string]float64{}
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		rm := md.ResourceMetrics().At(i)
		res := attrString(rm.Resource().Attributes())
		for j := 0; j < rm.ScopeMetrics().Len(); j++ {
			ms := rm.ScopeMetrics().At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				dps := m.Gauge().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					dp := dps.At(l)
					key := m.Name() + "{" + attrString(dp.Attributes()) + "}"
					if res != "" {
						key += " " + res
					}
					v := dp.DoubleValue()
					if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
						v = float64(dp.IntValue())
					}
					out[key] = v
				}
			}
		}
	}
	return out
}

func attrString(m pcommon.Map) string {
	var parts []string
	m.Range(func(k string, v pcommon.Value) bool {
		if !strings.HasSuffix(k, ".uid") {
			parts = append(parts, k+"="+v.AsString())
		}
		return true
	})
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func countPerPodSeries(md pmetric.Metrics) int {
	n := 0
	for k := range flatten(md) {
		if strings.HasPrefix(k, metricPodPhase) {
			n++
		}
	}
	return n
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := t.TempDir() + "/kubeconfig"
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server)
	if err := osWriteFile(path, content); err != nil {
		t.Fatal(err)
	}
	return path
}

func osWriteFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }

func TestConfigValidateNamesFields(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.AuthType = "token"
	cfg.CollectionInterval = 0
	cfg.ResyncPeriod = -time.Second
	err := cfg.Validate()
	for _, want := range []string{`"auth_type" "token"`, `"collection_interval"`, `"resync_period"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	cfg = createDefaultConfig()
	cfg.Kubeconfig = "/x"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"kubeconfig" is set`) {
		t.Errorf("Validate() = %v, want it to refuse kubeconfig with auth_type serviceAccount", err)
	}
}
