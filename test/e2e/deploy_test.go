package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestDeployManifests applies deploy/hub to a hub control plane and
// deploy/agent to a managed cluster (server-side, so the API servers check
// every object) as the README says — with the commands `fleetpulse hub
// token create` prints — then runs the hub and the agent with nothing but
// the rights those manifests give their service accounts and the settings
// the agent's StatefulSet reads: the agent joins, its cluster turns
// Available with its inventory, and a ManifestWork that creates a Namespace
// with a ConfigMap and a Deployment in it is applied, reports its
// Deployment's ready replicas and, deleted, removes them. No request of
// either is forbidden.
func TestDeployManifests(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "dephub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	cluster := testbed.StartClusters(t, "dep", 1, testbed.ClusterOptions{Nodes: 2})[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err := testbed.EnsureBinaries(ctx, testbed.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	root, err := testbed.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := func(kubeconfig string, args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, bins.Kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Log(kubectl(cp.KubeconfigPath, "apply", "--server-side", "-k", filepath.Join(root, "deploy", "hub")))
	hubKubeconfig := serviceAccountKubeconfig(t, kubectl, cp.KubeconfigPath, "fleetpulse-system", "fleetpulse-hub")

	// The hub, as a process, on its service account.
	ca := testbed.NewCA(t, "deploy-agents")
	certFile, keyFile := ca.Server("hub")
	httpAddr, agentAddr, work := testbed.FreeAddr(t), testbed.FreeAddr(t), t.TempDir()
	fleetpulse := buildBinary(t, "fleetpulse")
	hubProc, err := testbed.StartProcess("hub", fleetpulse, []string{"hub",
		"--http.listen-address=" + httpAddr, "--agents.listen-address=" + agentAddr,
		"--agents.tls-cert-file=" + certFile, "--agents.tls-key-file=" + keyFile,
		"--agents.client-ca-file=" + ca.CertFile, "--agents.client-ca-key-file=" + ca.KeyFile,
		"--control-plane.kubeconfig=" + hubKubeconfig, "--storage.tsdb.path=" + filepath.Join(work, "tsdb"),
		"--registration.heartbeat-period-seconds=2", "--registration.inventory-interval=1s",
	}, work)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hubProc.Stop(30 * time.Second) })
	hubLog := func() string { b, _ := os.ReadFile(filepath.Join(work, "hub.log")); return string(b) }
	admin, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}

	// A token, as an operator makes one; the commands it prints set the
	// agent's manifests up on the cluster.
	var printed string
	pollUntil(ctx, t, "fleetpulse hub token create (the hub installs its API first)", func() (bool, string) {
		out, err := exec.CommandContext(ctx, fleetpulse, "hub", "token", "create", "--control-plane.kubeconfig="+cp.KubeconfigPath,
			"--ttl=1h", "--auto-accept", "--hub-url=https://"+agentAddr, "--ca-file="+ca.CertFile).CombinedOutput()
		printed = string(out)
		return err == nil, printed + hubLog()
	})
	var ran int
	for _, line := range strings.Split(printed, "\n") {
		cmd, ok := strings.CutPrefix(line, "  kubectl ")
		if !ok {
			continue
		}
		args := strings.Fields(strings.ReplaceAll(cmd, "<name>", "deployed"))
		if args[len(args)-1] == "deploy/agent" {
			args[len(args)-1] = filepath.Join(root, "deploy", "agent")
		}
		t.Log(kubectl(cluster.KubeconfigPath, args...))
		ran++
	}
	if ran != 4 {
		t.Fatalf("token create printed %d kubectl commands, want 4:\n%s", ran, printed)
	}
	agentKubeconfig := serviceAccountKubeconfig(t, kubectl, cluster.KubeconfigPath, "fleetpulse-agent", "fleetpulse-agent")

	// The agent, on its service account, with the settings the StatefulSet
	// gives it from the ConfigMap and the Secret.
	setting := func(kind, key string) string {
		jsonpath := "{.data." + key + "}"
		v := kubectl(cluster.KubeconfigPath, "-n", "fleetpulse-agent", "get", kind, map[string]string{"configmap": "fleetpulse-agent", "secret": "fleetpulse-bootstrap-token"}[kind], "-o", "jsonpath="+jsonpath)
		if kind == "secret" {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatal(err)
			}
			v = string(raw)
		}
		return v
	}
	agent := startJoiningAgent(t, buildBinary(t, "fleetpulse-agent"), setting("secret", "token"), []string{
		"--hub=" + setting("configmap", "hub"), "--hub-ca-hash=" + setting("configmap", "hub-ca-hash"),
		"--cluster-name=" + setting("configmap", "cluster-name"),
		"--kubeconfig=" + agentKubeconfig, "--state-dir=" + t.TempDir(),
		"--collection-interval=2s", "--set=processors.batch.timeout=200ms"})
	waitCondition(t, admin, "deployed", fleetv1.ConditionAvailable, metav1.ConditionTrue)
	waitInventory(t, admin, "deployed", 2)

	// A work that needs the work agent's rights: a Namespace of its own,
	// and a ConfigMap and a Deployment in it.
	inApp := func(obj map[string]any) map[string]any {
		obj["metadata"].(map[string]any)["namespace"] = "deployed-app"
		return obj
	}
	mw := &fleetv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: "app", Namespace: "deployed"},
		Spec: fleetv1.ManifestWorkSpec{
			Workload: fleetv1.ManifestsTemplate{Manifests: workManifests(
				map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": "deployed-app"}},
				inApp(workConfigMap("app-config", "v1")), inApp(workDeployment("app", 2)))},
			ManifestConfigs: []fleetv1.ManifestConfigOption{{
				ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "deployed-app", Name: "app"},
				FeedbackRules:      []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}},
			}},
		},
	}
	if err := admin.Create(ctx, mw); err != nil {
		t.Fatal(err)
	}
	waitApplied(t, admin, "deployed", "app")
	pollUntil(ctx, t, "the Deployment's ready replicas as status feedback", func() (bool, string) {
		got := &fleetv1.ManifestWork{}
		if err := admin.Get(ctx, client.ObjectKeyFromObject(mw), got); err != nil {
			return false, err.Error()
		}
		return workFeedback(got, 2, "readyReplicas") == "2", fmt.Sprintf("%+v", got.Status)
	})
	dyn := dynamic.NewForConfigOrDie(cluster.RESTConfig)
	cms := schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	if _, err := dyn.Resource(cms).Namespace("deployed-app").Get(ctx, "app-config", metav1.GetOptions{}); err != nil {
		t.Fatalf("the work's ConfigMap on the cluster: %v", err)
	}
	if err := admin.Delete(ctx, mw); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the work's objects removed from the cluster", func() (bool, string) {
		_, err := dyn.Resource(cms).Namespace("deployed-app").Get(ctx, "app-config", metav1.GetOptions{})
		return err != nil && strings.Contains(err.Error(), "not found"), agent.tail()
	})
	waitGone(t, admin, "deployed", "app")

	for who, log := range map[string]string{"hub": hubLog(), "agent": agent.logs()} {
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(strings.ToLower(line), "forbidden") {
				t.Errorf("%s was refused a request its deploy manifests should allow: %s", who, line)
			}
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig for the cluster of
// adminKubeconfig that authenticates as the service account, with a token
// from the TokenRequest API (kubectl create token).
func serviceAccountKubeconfig(t *testing.T, kubectl func(string, ...string) string, adminKubeconfig, namespace, name string) string {
	t.Helper()
	token := strings.TrimSpace(kubectl(adminKubeconfig, "-n", namespace, "create", "token", name, "--duration=1h"))
	cfg, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{name: {Token: token}}
	ctx.AuthInfo = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}
