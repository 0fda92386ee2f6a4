package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestAgentsReportToHub runs a hub and one agent per test-bed cluster (three), each
// agent holding a client certificate named after its cluster, and asks the
// hub with promtool, as a user would, for each cluster's Ready node count.
func TestAgentsReportToHub(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not on PATH (Debian package prometheus; .ci/run installs it): %v", err)
	}
	clusters := testbed.StartClusters(t, "fleet", 3, testbed.ClusterOptions{Nodes: 2})
	// Make the clusters differ: cluster i gets i extra nodes.
	for i, c := range clusters {
		for n := range i {
			extra := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fleet-%d-node-extra-%d", i, n), Annotations: map[string]string{testbed.KwokNodeAnnotation: "fake"}}}
			if _, err := kubernetes.NewForConfigOrDie(c.RESTConfig).CoreV1().Nodes().Create(context.Background(), extra, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}

	ca := testbed.NewCA(t, "fleet-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	agentBin := buildBinary(t, "fleetpulse-agent")
	for i, c := range clusters {
		startAgent(t, agentBin, agentsURL, ca, fmt.Sprintf("cluster-%c", 'a'+i), c.KubeconfigPath)
	}

	query := `count by (cluster) (k8s_node_condition_status{k8s_node_condition_type="Ready",k8s_node_condition_status="true"})`
	want := []string{`{cluster="cluster-a"} => 2`, `{cluster="cluster-b"} => 3`, `{cluster="cluster-c"} => 4`}
	deadline := time.Now().Add(90 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out, err = exec.Command(promtool, "query", "instant", httpURL, query).CombinedOutput()
		if err == nil && containsAll(string(out), want) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !containsAll(string(out), want) {
		t.Fatalf("promtool query instant %s '%s':\n%s\nwant lines %q (err %v)", httpURL, query, out, want, err)
	}

	// A Kubernetes event in cluster-b reaches the hub's event store, under
	// cluster-b, and is counted.
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "web-1.e2e", Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: "web-1"},
		Reason:         "BackOff", Message: "Back-off restarting failed container", Type: corev1.EventTypeWarning, Count: 1,
		FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
	}
	if _, err := kubernetes.NewForConfigOrDie(clusters[1].RESTConfig).CoreV1().Events("default").Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var body []byte
	deadline = time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(httpURL + "/api/v1/events?cluster=cluster-b"); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), "Back-off restarting failed container") {
				break
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(string(body), `"reason":"BackOff"`) || !strings.Contains(string(body), `"cluster":"cluster-b"`) {
		t.Fatalf("GET /api/v1/events?cluster=cluster-b = %s, want the BackOff event of cluster-b", body)
	}
	resp, err := http.Get(httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `fleetpulse_hub_events_total{cluster="cluster-b",kind="Pod",reason="BackOff",type="Warning"} 1`) {
		t.Errorf("/metrics lacks the event count of cluster-b")
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
