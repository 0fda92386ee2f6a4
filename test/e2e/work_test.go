package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	hubreg "github.com/fleetpulse/fleetpulse/hub/registration"
	hubwork "github.com/fleetpulse/fleetpulse/hub/work"
	"github.com/fleetpulse/fleetpulse/internal/testutil/hubtest"
	"github.com/fleetpulse/fleetpulse/testbed"
)

var (
	workCMs     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	workDeploys = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// TestManifestWork distributes work through a real hub to real agents
// that joined with a bootstrap token: a ManifestWork with a Deployment of 3
// replicas (scheduled and run by kwok) and a ConfigMap is applied on its
// cluster only, with its status (readyReplicas 3) back at the hub; edits
// reach the cluster within seconds; a drift is corrected and reported; a
// restarted agent changes nothing; deleting the work removes exactly what
// it applied, and an Orphan work leaves its objects. The other cluster's
// certificate can neither read nor write the work.
func TestManifestWork(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "workhub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	clusters := testbed.StartClusters(t, "work", 2, testbed.ClusterOptions{Nodes: 2})
	ca := testbed.NewCA(t, "work-agents")
	hb := hubtest.Start(t, hubtest.Config(t, ca, func(c *hub.Config) {
		c.ControlPlaneKubeconfig = cp.KubeconfigPath
		c.AgentTLS.ClientCAKeyFile = ca.KeyFile
		c.Registration.DefaultHeartbeatPeriodSeconds = 2
	}))
	httpURL, agentsURL := hb.HTTPURL, hb.AgentsURL
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	kube, err := client.New(cp.RESTConfig, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := hubreg.NewTokens(kube, "fleetpulse-system").Create(ctx, hubreg.TokenOptions{TTL: time.Hour, AutoAccept: true})
	if err != nil {
		t.Fatal(err)
	}
	pin := caPin(t, ca.CertFile)
	bin := buildBinary(t, "fleetpulse-agent")
	names := []string{"work-east", "work-west"}
	states := []string{t.TempDir(), t.TempDir()}
	argsOf := func(i int) []string {
		return []string{"--hub=" + agentsURL, "--hub-ca-hash=" + pin, "--cluster-name=" + names[i],
			"--kubeconfig=" + clusters[i].KubeconfigPath, "--state-dir=" + states[i],
			"--collection-interval=5s", "--set=processors.batch.timeout=200ms"}
	}
	agents := []*joiningAgent{startJoiningAgent(t, bin, token, argsOf(0)), startJoiningAgent(t, bin, token, argsOf(1))}
	for _, n := range names {
		waitCondition(t, kube, n, fleetv1.ConditionAvailable, metav1.ConditionTrue)
	}
	east := dynamic.NewForConfigOrDie(clusters[0].RESTConfig)
	west := dynamic.NewForConfigOrDie(clusters[1].RESTConfig)
	get := func(dyn *dynamic.DynamicClient, gvr schema.GroupVersionResource, name string) (*unstructured.Unstructured, error) {
		return dyn.Resource(gvr).Namespace("default").Get(ctx, name, metav1.GetOptions{})
	}
	dataOf := func(name string) string {
		cm, err := get(east, workCMs, name)
		if err != nil {
			return err.Error()
		}
		v, _, _ := unstructured.NestedString(cm.Object, "data", "key")
		return v
	}
	// A ConfigMap no work names: it must outlive every work.
	if _, err := east.Resource(workCMs).Namespace("default").Create(ctx, &unstructured.Unstructured{Object: workConfigMap("bystander", "mine")}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The work: a Deployment of 3 replicas and a ConfigMap, on east.
	mw := &fleetv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "work-east"},
		Spec: fleetv1.ManifestWorkSpec{
			Workload: fleetv1.ManifestsTemplate{Manifests: workManifests(workConfigMap("web-config", "v1"), workDeployment("web", 3))},
			ManifestConfigs: []fleetv1.ManifestConfigOption{
				{ResourceIdentifier: fleetv1.ResourceIdentifier{Resource: "configmaps", Namespace: "default", Name: "web-config"},
					UpdateStrategy: &fleetv1.UpdateStrategy{Type: fleetv1.UpdateServerSideApply, Force: true}},
				{ResourceIdentifier: fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "default", Name: "web"},
					FeedbackRules: []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus}}},
			},
		},
	}
	if err := kube.Create(ctx, mw); err != nil {
		t.Fatal(err)
	}
	work := func() *fleetv1.ManifestWork {
		got := &fleetv1.ManifestWork{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: "work-east", Name: "web"}, got); err != nil {
			return &fleetv1.ManifestWork{}
		}
		return got
	}
	pollUntil(ctx, t, "the work applied on east, available, with readyReplicas 3 at the hub", func() (bool, string) {
		w := work()
		return isTrue(w.Status.Conditions, fleetv1.WorkApplied) && isTrue(w.Status.Conditions, fleetv1.WorkAvailable) &&
			workFeedback(w, 1, "readyReplicas") == "3" && controllerutil.ContainsFinalizer(w, hubwork.Finalizer), fmt.Sprintf("%+v", w.Status)
	})
	uids := map[string]string{}
	for name, gvr := range map[string]schema.GroupVersionResource{"web": workDeploys, "web-config": workCMs} {
		o, err := get(east, gvr, name)
		if err != nil {
			t.Fatalf("%s on east: %v", name, err)
		}
		uids[name] = string(o.GetUID())
		if _, err := get(west, gvr, name); !apierrors.IsNotFound(err) {
			t.Errorf("%s applied on west too: %v", name, err)
		}
	}

	// west's certificate reaches only west's works.
	westClient := mtlsClient(t, filepath.Join(states[1], "credentials", "ca.crt"),
		filepath.Join(states[1], "credentials", "tls.crt"), filepath.Join(states[1], "credentials", "tls.key"))
	var list agentapi.WorkList
	if code := workCall(t, westClient, http.MethodGet, agentsURL+agentapi.PathWorks+"?timeout=0s", nil, &list); code != http.StatusOK || len(list.Items) != 0 {
		t.Errorf("west lists %d %+v, want 200 and none of east's works", code, list.Items)
	}
	if code := workCall(t, westClient, http.MethodGet, agentsURL+agentapi.PathWorks+"?timeout=0s&namespace=work-east", nil, nil); code != http.StatusForbidden {
		t.Errorf("west lists east's namespace: %d, want 403", code)
	}
	forged := agentapi.WorkStatusRequest{UID: string(work().UID), Status: fleetv1.ManifestWorkStatus{ObservedGeneration: 99}}
	if code := workCall(t, westClient, http.MethodPut, agentsURL+agentapi.WorkStatusPath("web")+"?namespace=work-east", forged, nil); code != http.StatusForbidden {
		t.Errorf("west writes the status of east's work: %d, want 403", code)
	}
	if code := workCall(t, westClient, http.MethodPut, agentsURL+agentapi.WorkStatusPath("web"), forged, nil); code != http.StatusNotFound {
		t.Errorf("west writes the status of a work named like east's: %d, want 404 (west has none)", code)
	}
	if code := workCall(t, westClient, http.MethodDelete, agentsURL+agentapi.WorkFinalizerPath("web")+"?namespace=work-east", nil, nil); code != http.StatusForbidden {
		t.Errorf("west releases east's work: %d, want 403", code)
	}
	if w := work(); w.Status.ObservedGeneration == 99 || !controllerutil.ContainsFinalizer(w, hubwork.Finalizer) {
		t.Errorf("west's calls changed east's work: %+v", w)
	}

	// An edit reaches the cluster within seconds: ConfigMap data and replicas.
	w := work()
	w.Spec.Workload.Manifests = workManifests(workConfigMap("web-config", "v2"), workDeployment("web", 4))
	edited := time.Now()
	if err := kube.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the edited ConfigMap on east", func() (bool, string) { return dataOf("web-config") == "v2", dataOf("web-config") })
	took := time.Since(edited)
	t.Logf("an edit of the work reached the cluster in %s", took.Round(10*time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the edit took %s to reach the cluster, want seconds", took)
	}
	pollUntil(ctx, t, "4 ready replicas at the hub", func() (bool, string) {
		w := work()
		return workFeedback(w, 1, "readyReplicas") == "4" && w.Status.ObservedGeneration == w.Generation, fmt.Sprintf("%+v", w.Status)
	})

	// Drift: someone edits the ConfigMap on east; the agent puts it back.
	cm, _ := get(east, workCMs, "web-config")
	_ = unstructured.SetNestedField(cm.Object, "tampered", "data", "key")
	if _, err := east.Resource(workCMs).Namespace("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "drift corrected and reported at the hub", func() (bool, string) {
		w := work()
		c := meta.FindStatusCondition(w.Status.Conditions, fleetv1.WorkApplied)
		return dataOf("web-config") == "v2" && w.Status.LastDriftTime != nil && c != nil && c.Reason == "DriftCorrected",
			fmt.Sprintf("%s %+v", dataOf("web-config"), w.Status)
	})
	// The agent's own telemetry at the hub counts what it did.
	api := promAPI(t, httpURL)
	waitForValue(t, api, `fleetpulse_agent_work_drifts_total{cluster="work-east"} >= bool 1`, 1)
	waitForValue(t, api, `fleetpulse_agent_work_applies_total{cluster="work-east",result="ok"} >= bool 4`, 1)
	waitForValue(t, api, `fleetpulse_agent_work_works{cluster="work-east"}`, 1)
	waitForValue(t, api, `fleetpulse_agent_work_hub_requests_total{cluster="work-east",request="status",result="ok"} > bool 0`, 1)

	// Restart east's agent in the middle of things: nothing is deleted or
	// created again, and the next edit still arrives.
	agents[0].stop(t)
	agents[0] = startJoiningAgent(t, bin, "", argsOf(0))
	w = work()
	w.Spec.Workload.Manifests = workManifests(workConfigMap("web-config", "v3"), workDeployment("web", 3))
	if err := kube.Update(ctx, w); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the edit after the restart applied", func() (bool, string) {
		w := work()
		return dataOf("web-config") == "v3" && workFeedback(w, 1, "readyReplicas") == "3" && w.Status.ObservedGeneration == w.Generation,
			fmt.Sprintf("%s %+v", dataOf("web-config"), w.Status)
	})
	for name, gvr := range map[string]schema.GroupVersionResource{"web": workDeploys, "web-config": workCMs} {
		if o, err := get(east, gvr, name); err != nil || string(o.GetUID()) != uids[name] {
			t.Errorf("%s after the agent's restart: %v (uid %v, want %s: not recreated)", name, err, o.GetUID(), uids[name])
		}
	}

	// An Orphan work leaves its objects when deleted.
	orphan := &fleetv1.ManifestWork{
		ObjectMeta: metav1.ObjectMeta{Name: "keep", Namespace: "work-east"},
		Spec: fleetv1.ManifestWorkSpec{
			Workload:     fleetv1.ManifestsTemplate{Manifests: workManifests(workConfigMap("kept", "k"))},
			DeleteOption: &fleetv1.DeleteOption{PropagationPolicy: fleetv1.DeleteOrphan},
		},
	}
	if err := kube.Create(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	pollUntil(ctx, t, "the orphan work applied", func() (bool, string) { return dataOf("kept") == "k", dataOf("kept") })

	// Deleting the works: web's objects go, kept and bystander stay, and
	// both works are let go by the hub.
	for _, name := range []string{"web", "keep"} {
		if err := kube.Delete(ctx, &fleetv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "work-east"}}); err != nil {
			t.Fatal(err)
		}
	}
	pollUntil(ctx, t, "both works gone from the hub", func() (bool, string) {
		var l fleetv1.ManifestWorkList
		if err := kube.List(ctx, &l, client.InNamespace("work-east")); err != nil {
			return false, err.Error()
		}
		return len(l.Items) == 0, fmt.Sprintf("%d works left", len(l.Items))
	})
	for name, gvr := range map[string]schema.GroupVersionResource{"web": workDeploys, "web-config": workCMs} {
		if _, err := get(east, gvr, name); !apierrors.IsNotFound(err) {
			t.Errorf("%s still on east after its work was deleted: %v", name, err)
		}
	}
	for _, name := range []string{"kept", "bystander"} {
		if _, err := get(east, workCMs, name); err != nil {
			t.Errorf("%s gone from east: %v", name, err)
		}
	}
	if strings.Contains(agents[0].logs(), "level=ERROR") {
		t.Errorf("east's agent logged errors:\n%s", agents[0].tail())
	}
}

func workConfigMap(name, value string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]any{"key": value}}
}

func workDeployment(name string, replicas int) map[string]any {
	labels := map[string]any{"app": name}
	return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"replicas": replicas, "selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "example.com/web:1"}}}}}}
}

func workManifests(objs ...map[string]any) []fleetv1.Manifest {
	out := make([]fleetv1.Manifest, len(objs))
	for i, o := range objs {
		raw, _ := json.Marshal(o)
		out[i] = fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
	}
	return out
}

func isTrue(conds []metav1.Condition, typ string) bool {
	return meta.IsStatusConditionTrue(conds, typ)
}

// workFeedback is a status feedback value of the manifest at ordinal.
func workFeedback(w *fleetv1.ManifestWork, ordinal int, name string) string {
	if ordinal >= len(w.Status.Manifests) {
		return ""
	}
	fb := w.Status.Manifests[ordinal].StatusFeedback
	if i := slices.IndexFunc(fb, func(v fleetv1.FeedbackValue) bool { return v.Name == name }); i >= 0 {
		return string(fb[i].Value.Raw)
	}
	return ""
}

// workCall sends a gateway request and decodes a 200's body into out.
func workCall(t *testing.T, c *http.Client, method, url string, in, out any) int {
	t.Helper()
	var body io.Reader
	if in != nil {
		raw, _ := json.Marshal(in)
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}
