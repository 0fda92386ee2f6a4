package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/dashboards"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	hubreg "github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestDashboardsQueryLiveFleet feeds a hub from two test-bed clusters'
// agents, which join with a bootstrap token, each running a Deployment and
// emitting a Warning event, and evaluating two policies (one compliant
// cluster and one not, and a remediation; see dashboardPolicies), then
// runs every panel query of every shipped dashboard against it (but those
// of inUseDashboards), with the template variables resolved from the hub
// as Grafana would, and requires each to parse and return data.
func TestDashboardsQueryLiveFleet(t *testing.T) {
	t.Parallel()
	all, err := dashboards.Load()
	if err != nil {
		t.Fatal(err)
	}
	var boards []dashboards.Dashboard
	for _, d := range all {
		if _, ok := inUseDashboards[d.Title]; !ok {
			boards = append(boards, d)
		}
	}
	cp := testbed.StartClusters(t, "dashhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "dash", 2, testbed.ClusterOptions{Nodes: 2})
	ca := testbed.NewCA(t, "dash-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.Alerting.EvaluationInterval = time.Second
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	kube, err := ctrlclient.New(cp.RESTConfig, ctrlclient.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := hubreg.NewTokens(kube, "fleetpulse-system").Create(context.Background(), hubreg.TokenOptions{TTL: time.Hour, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	agentBin := buildBinary(t, "fleetpulse-agent")
	var names []string
	for i, c := range clusters {
		names = append(names, fmt.Sprintf("cluster-%c", 'a'+i))
		joinAgent(t, agentBin, agentsURL, token, pin, names[i], c.KubeconfigPath, t.TempDir())
		cs := kubernetes.NewForConfigOrDie(c.RESTConfig)
		web := nginxDeployment("web", 2)
		web.Spec.Template.Spec.Containers[0].Resources.Requests = corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("128Mi"),
		}
		if _, err := cs.AppsV1().Deployments("default").Create(context.Background(), web, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	client, err := api.NewClient(api.Config{Address: httpURL})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(client)
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	dashboardPolicies(t, kube, clusters, names)
	// The agents send only events that happen after they start: wait until
	// both report before making the Warning events the dashboards show.
	waitForValue(t, prom, `count(count by (cluster) (k8s_cluster_info))`, 2)
	for _, c := range clusters {
		cs := kubernetes.NewForConfigOrDie(c.RESTConfig)
		ev := &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "web.dashboards", Namespace: "default"},
			InvolvedObject: corev1.ObjectReference{Kind: "Deployment", Namespace: "default", Name: "web"},
			Reason:         "FailedCreate", Message: "probe event for the dashboards", Type: corev1.EventTypeWarning, Count: 1,
			FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(),
		}
		if _, err := cs.CoreV1().Events("default").Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now().Add(-time.Minute)

	// Poll until every query has data: the agents' first points, the rules'
	// first evaluations and the rates' second samples arrive over seconds.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		failures := runPanels(t, prom, boards, start)
		if len(failures) == 0 {
			break
		}
		if time.Now().After(deadline) {
			sort.Strings(failures)
			t.Fatalf("%d panel queries failed or returned nothing after 2m:\n%s", len(failures), strings.Join(failures, "\n"))
		}
		time.Sleep(2 * time.Second)
	}
	if out, err := exec.Command("promtool", "query", "instant", httpURL, `cluster:k8s_cpu_requests:ratio`).CombinedOutput(); err != nil || !strings.Contains(string(out), `cluster="cluster-a"`) {
		t.Errorf("promtool query instant cluster:k8s_cpu_requests:ratio: %v\n%s", err, out)
	}
}

// inUseDashboards read series that exist only while a feature is in use;
// the test named runs their panels instead, while the feature is.
var inUseDashboards = map[string]string{
	"Fleetpulse / Rollouts": "TestRolloutsGateOnTelemetry, during a rollout",
}

// runPanels runs every target of every dashboard, instant targets at now and
// range targets over [start, now], and describes those that failed.
func runPanels(t *testing.T, prom promv1.API, boards []dashboards.Dashboard, start time.Time) []string {
	t.Helper()
	ctx := context.Background()
	now := time.Now()
	var failures []string
	for _, d := range boards {
		vars := map[string]string{"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			selector, label, _ := v.LabelValuesQuery()
			values, _, err := prom.LabelValues(ctx, label, []string{selector}, start.Add(-time.Hour), now)
			if err != nil || len(values) == 0 {
				failures = append(failures, fmt.Sprintf("%s: variable %s (%s): %v, %d values", d.Title, v.Name, v.Definition, err, len(values)))
				continue
			}
			vars[v.Name] = string(values[0])
			if v.IncludeAll {
				vars[v.Name] = v.AllValue
			}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				where := fmt.Sprintf("%s / %s / %s", d.Title, p.Title, tg.RefID)
				expr, err := dashboards.Expand(tg.Expr, vars)
				if err != nil {
					failures = append(failures, where+": "+err.Error())
					continue
				}
				var val model.Value
				if tg.Instant {
					val, _, err = prom.Query(ctx, expr, now)
				} else {
					val, _, err = prom.QueryRange(ctx, expr, promv1.Range{Start: start, End: now, Step: 2 * time.Second})
				}
				switch {
				case err != nil:
					failures = append(failures, fmt.Sprintf("%s: %q: %v", where, expr, err))
				case empty(val):
					failures = append(failures, fmt.Sprintf("%s: %q returned no data", where, expr))
				}
			}
		}
	}
	return failures
}

func empty(v model.Value) bool {
	switch v := v.(type) {
	case model.Vector:
		return len(v) == 0
	case model.Matrix:
		return len(v) == 0
	default:
		return v == nil
	}
}

// startAgent runs a fleetpulse-agent for one cluster, holding a client
// certificate of ca named after it, until the test ends.
func startAgent(t *testing.T, bin, hubURL string, ca *testbed.CA, name, kubeconfig string) {
	t.Helper()
	cert, key := ca.Client(name)
	agent := exec.Command(bin,
		"--hub="+hubURL, "--hub-ca-file="+ca.CertFile, "--cert-file="+cert, "--key-file="+key,
		"--cluster-name="+name, "--kubeconfig="+kubeconfig, "--state-dir="+t.TempDir(),
		"--collection-interval=1s", "--set=processors.batch.timeout=200ms",
		"--metrics-address="+testbed.FreeAddr(t), "--self-telemetry-address="+testbed.FreeAddr(t))
	agent.Stderr = processLog(t, "agent-"+name)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
}
