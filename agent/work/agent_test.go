package work

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fakeHub serves the work endpoints as the hub does, from a list the test
// sets, over mutual TLS.
type fakeHub struct {
	mu       sync.Mutex
	version  int
	works    map[string]agentapi.WorkItem
	changed  chan struct{}
	statuses map[string]fleetv1.ManifestWorkStatus
	puts     map[string]int
	released map[string]string
	url      string
}

func startFakeHub(t *testing.T, ca *testbed.CA) *fakeHub {
	t.Helper()
	h := &fakeHub{works: map[string]agentapi.WorkItem{}, changed: make(chan struct{}),
		statuses: map[string]fleetv1.ManifestWorkStatus{}, puts: map[string]int{}, released: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+agentapi.PathWorks, h.list)
	mux.HandleFunc("PUT "+agentapi.PathWorks+"/{name}/status", h.status)
	mux.HandleFunc("DELETE "+agentapi.PathWorks+"/{name}/finalizer", h.release)
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = ca.ServerTLS("hub")
	srv.StartTLS()
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func (h *fakeHub) set(items ...agentapi.WorkItem) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.works = map[string]agentapi.WorkItem{}
	for _, it := range items {
		h.works[it.Name] = it
	}
	h.version++
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *fakeHub) list(w http.ResponseWriter, r *http.Request) {
	timeout, _ := time.ParseDuration(r.URL.Query().Get(agentapi.ParamTimeout))
	h.mu.Lock()
	cur, ch := strconv.Itoa(h.version), h.changed
	h.mu.Unlock()
	if r.URL.Query().Get(agentapi.ParamResourceVersion) == cur {
		select {
		case <-ch:
		case <-time.After(timeout):
			w.WriteHeader(http.StatusNotModified)
			return
		case <-r.Context().Done():
			return
		}
	}
	h.mu.Lock()
	out := agentapi.WorkList{ResourceVersion: strconv.Itoa(h.version), Items: []agentapi.WorkItem{}}
	for _, it := range h.works {
		if st, ok := h.statuses[it.Name]; ok {
			it.Status = st.DeepCopy()
		}
		out.Items = append(out.Items, it)
	}
	h.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}

func (h *fakeHub) status(w http.ResponseWriter, r *http.Request) {
	var req agentapi.WorkStatusRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	name := r.PathValue("name")
	if _, ok := h.works[name]; !ok {
		http.Error(w, "no such work", http.StatusNotFound)
		return
	}
	h.statuses[name] = req.Status
	h.puts[name]++
	w.WriteHeader(http.StatusNoContent)
}

func (h *fakeHub) release(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.released[r.PathValue("name")] = r.URL.Query().Get(agentapi.ParamUID)
	w.WriteHeader(http.StatusNoContent)
}

func (h *fakeHub) statusOf(name string) (fleetv1.ManifestWorkStatus, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.statuses[name]
	return *st.DeepCopy(), h.puts[name]
}

func (h *fakeHub) releasedUID(name string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.released[name]
}

func manifests(objs ...map[string]any) []fleetv1.Manifest {
	out := make([]fleetv1.Manifest, len(objs))
	for i, o := range objs {
		raw, _ := json.Marshal(o)
		out[i] = fleetv1.Manifest{RawExtension: runtime.RawExtension{Raw: raw}}
	}
	return out
}

func configMap(name, value string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name, "namespace": "default"}, "data": map[string]any{"key": value}}
}

func deploymentManifest(name string, replicas int) map[string]any {
	labels := map[string]any{"app": name}
	return map[string]any{"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": name, "namespace": "default"},
		"spec": map[string]any{"replicas": replicas, "selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "image": "example.com/app:1"}}}}}}
}

var (
	cmGVR     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

type runningAgent struct {
	*Agent
	cancel context.CancelFunc
	done   chan struct{}
}

// settle waits until the agent has synced every work n more times.
func (r *runningAgent) settle(t *testing.T, n int64) {
	t.Helper()
	want := r.sweeps.Load() + n
	testutil.Eventually(t, time.Minute, func() error {
		if r.sweeps.Load() < want {
			return fmt.Errorf("%v", r.sweeps.Load())
		}
		return nil
	}, "periodic syncs")
}

func (r *runningAgent) stop() { r.cancel(); <-r.done }

func runAgent(t *testing.T, cfg Config) *runningAgent {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningAgent{Agent: a, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); _ = a.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func condition(st fleetv1.ManifestWorkStatus, typ string) *metav1.Condition {
	return meta.FindStatusCondition(st.Conditions, typ)
}

// TestAgentAppliesWorks runs the work agent against a real cluster and a
// fake hub: apply with feedback, an edit, drift, an object leaving the
// work, a restart, a CRD with its resource in one work, Orphan, and
// deletion removing exactly what was applied.
func TestAgentAppliesWorks(t *testing.T) {
	cluster := testbed.StartClusters(t, "workagent", 1, testbed.ClusterOptions{Nodes: 1})[0]
	ca := testbed.NewCA(t, "workagent")
	hub := startFakeHub(t, ca)
	state := t.TempDir()
	p := registration.PathsIn(state)
	_ = os.MkdirAll(p.Dir, 0o700)
	certFile, keyFile := ca.Client("c1")
	for src, dst := range map[string]string{certFile: p.Cert, keyFile: p.Key, ca.CertFile: p.CA} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := Config{Hub: hub.url, ClusterName: "c1", StateDir: state, RESTConfig: cluster.RESTConfig, SyncInterval: 2 * time.Second,
		PollTimeout: 5 * time.Second, Logger: testutil.Logger(t, slog.LevelInfo)}
	dyn := dynamic.NewForConfigOrDie(cluster.RESTConfig)
	ctx := context.Background()
	get := func(gvr schema.GroupVersionResource, name string) (*unstructured.Unstructured, error) {
		return dyn.Resource(gvr).Namespace("default").Get(ctx, name, metav1.GetOptions{})
	}
	// An object the works never name: it must survive everything.
	bystander := &unstructured.Unstructured{Object: configMap("bystander", "mine")}
	if _, err := dyn.Resource(cmGVR).Namespace("default").Create(ctx, bystander, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cmID := fleetv1.ResourceIdentifier{Resource: "configmaps", Namespace: "default", Name: "settings"}
	deployID := fleetv1.ResourceIdentifier{Group: "apps", Resource: "deployments", Namespace: "default", Name: "web"}
	strategy := func(name string, t fleetv1.UpdateStrategyType) fleetv1.ManifestConfigOption {
		return fleetv1.ManifestConfigOption{ResourceIdentifier: fleetv1.ResourceIdentifier{Resource: "configmaps", Namespace: "default", Name: name},
			UpdateStrategy: &fleetv1.UpdateStrategy{Type: t}}
	}
	readOnly := strategy("bystander", fleetv1.UpdateReadOnly)
	readOnly.FeedbackRules = []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackJSONPaths, JSONPaths: []fleetv1.JSONPath{{Name: "key", Path: ".data.key"}}}}
	// Ordinals: 0 settings (forced apply), 1 web, 2 soft (apply without
	// force), 3 once (CreateOnly), 4 replaced (Update), 5 bystander
	// (ReadOnly), 6 extra (leaves the work).
	others := []map[string]any{configMap("soft", "s"), configMap("once", "o"), configMap("replaced", "r"), configMap("bystander", "ignored")}
	work := agentapi.WorkItem{Name: "app", UID: "uid-app", Generation: 1, Spec: fleetv1.ManifestWorkSpec{
		Workload: fleetv1.ManifestsTemplate{Manifests: manifests(append(append([]map[string]any{configMap("settings", "v1"), deploymentManifest("web", 2)}, others...), configMap("extra", "x"))...)},
		ManifestConfigs: []fleetv1.ManifestConfigOption{
			{ResourceIdentifier: cmID, UpdateStrategy: &fleetv1.UpdateStrategy{Type: fleetv1.UpdateServerSideApply, Force: true}},
			{ResourceIdentifier: deployID, FeedbackRules: []fleetv1.FeedbackRule{{Type: fleetv1.FeedbackWellKnownStatus},
				{Type: fleetv1.FeedbackJSONPaths, JSONPaths: []fleetv1.JSONPath{{Name: "image", Path: ".spec.template.spec.containers[0].image"}}}}},
			strategy("once", fleetv1.UpdateCreateOnly), strategy("replaced", fleetv1.UpdateUpdate), readOnly,
		},
	}}
	hub.set(work)
	agent := runAgent(t, cfg)

	feedbackOf := func(st fleetv1.ManifestWorkStatus, ordinal int, name string) string {
		if ordinal >= len(st.Manifests) {
			return ""
		}
		for _, v := range st.Manifests[ordinal].StatusFeedback {
			if v.Name == name {
				return string(v.Value.Raw)
			}
		}
		return ""
	}
	testutil.Eventually(t, 90*time.Second, func() error {
		st, _ := hub.statusOf("app")
		ok := condition(st, "Applied") != nil && condition(st, "Applied").Status == "True" &&
			condition(st, "Available") != nil && condition(st, "Available").Status == "True" &&
			condition(st, "Progressing") != nil && condition(st, "Progressing").Reason == ReasonCompleted &&
			feedbackOf(st, 1, "readyReplicas") == "2" && feedbackOf(st, 1, "image") == `"example.com/app:1"` &&
			feedbackOf(st, 5, "key") == `"mine"`
		if !ok {
			return fmt.Errorf("%+v", st)
		}
		return nil
	}, "the work applied and available with 2 ready replicas")
	settings, err := get(cmGVR, "settings")
	if err != nil || settings.GetLabels()[LabelApplied] != "true" {
		t.Fatalf("settings: %v %v", settings, err)
	}
	web, _ := get(deployGVR, "web")
	extra, _ := get(cmGVR, "extra")
	by, _ := get(cmGVR, "bystander")
	uids := map[string]string{"settings": string(settings.GetUID()), "web": string(web.GetUID()), "extra": string(extra.GetUID()), "bystander": string(by.GetUID())}
	rec, err := dyn.Resource(cmGVR).Namespace(DefaultNamespace).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("record of work app: %v", err)
	}
	recJSON, _, _ := unstructured.NestedString(rec.Object, "data", recordKey)
	for name, uid := range uids {
		if in := strings.Contains(recJSON, uid); in != (name != "bystander") {
			t.Errorf("record %s: uid of %s in it: %v", recJSON, name, in)
		}
	}

	// A steady work is not reported again, and applying it again writes
	// nothing (a no-op server-side apply keeps the resource version, so the
	// agent's watches do not wake it).
	agent.settle(t, 1)
	_, puts := hub.statusOf("app")
	rvs := map[string]string{}
	for _, name := range []string{"settings", "replaced", "once"} {
		o, _ := get(cmGVR, name)
		rvs[name] = o.GetResourceVersion()
	}
	agent.settle(t, 3)
	if _, again := hub.statusOf("app"); again != puts {
		t.Errorf("status reported %d more times while nothing changed", again-puts)
	}
	for name, rv := range rvs {
		if o, _ := get(cmGVR, name); o.GetResourceVersion() != rv {
			t.Errorf("applying the unchanged ConfigMap %s again wrote it: resourceVersion %s → %s", name, rv, o.GetResourceVersion())
		}
	}

	// Edit the work: data and replicas change, one object leaves the work.
	work.Generation = 2
	work.Spec.Workload.Manifests = manifests(append([]map[string]any{configMap("settings", "v2"), deploymentManifest("web", 3)}, others...)...)
	hub.set(work)
	testutil.Eventually(t, 90*time.Second, func() error {
		cm, err := get(cmGVR, "settings")
		if err != nil {
			return err
		}
		v, _, _ := unstructured.NestedString(cm.Object, "data", "key")
		_, err = get(cmGVR, "extra")
		st, _ := hub.statusOf("app")
		if !(v == "v2" && apierrors.IsNotFound(err) && feedbackOf(st, 1, "readyReplicas") == "3" && st.ObservedGeneration == 2) {
			return fmt.Errorf("settings %q, extra %v, status %+v", v, err, st)
		}
		return nil
	}, "the edit applied: settings v2, 3 ready replicas, extra deleted")

	// Drift: someone edits the ConfigMaps. A forced apply and Update put
	// theirs back and say so; an apply without force meets a conflict and
	// reports it; CreateOnly leaves the edit.
	for _, name := range []string{"settings", "soft", "once", "replaced"} {
		cm, _ := get(cmGVR, name)
		_ = unstructured.SetNestedField(cm.Object, "tampered", "data", "key")
		if _, err := dyn.Resource(cmGVR).Namespace("default").Update(ctx, cm, metav1.UpdateOptions{FieldManager: "someone"}); err != nil {
			t.Fatal(err)
		}
	}
	valueOf := func(name string) string {
		cm, _ := get(cmGVR, name)
		if cm == nil {
			return ""
		}
		v, _, _ := unstructured.NestedString(cm.Object, "data", "key")
		return v
	}
	reason := func(st fleetv1.ManifestWorkStatus, ordinal int) string {
		if ordinal >= len(st.Manifests) {
			return ""
		}
		if c := meta.FindStatusCondition(st.Manifests[ordinal].Conditions, "Applied"); c != nil {
			return c.Reason
		}
		return ""
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		st, _ := hub.statusOf("app")
		c := condition(st, "Applied")
		if !(valueOf("settings") == "v2" && valueOf("replaced") == "r" && st.LastDriftTime != nil && c != nil && c.Status == "False" &&
			reason(st, 0) == ReasonDriftCorrected && reason(st, 4) == ReasonDriftCorrected && reason(st, 2) == ReasonApplyConflict) {
			return fmt.Errorf("%q %q %+v", valueOf("settings"), valueOf("replaced"), st)
		}
		return nil
	}, "drift corrected and reported")
	if v := valueOf("soft"); v != "tampered" {
		t.Errorf("an apply without force overwrote a field another manager took: %q", v)
	}
	if v := valueOf("once"); v != "tampered" {
		t.Errorf("CreateOnly touched its object again: %q", v)
	}
	// Force the soft one too: the work is whole again.
	work.Generation = 3
	work.Spec.ManifestConfigs = append(work.Spec.ManifestConfigs, fleetv1.ManifestConfigOption{
		ResourceIdentifier: fleetv1.ResourceIdentifier{Resource: "configmaps", Namespace: "default", Name: "soft"},
		UpdateStrategy:     &fleetv1.UpdateStrategy{Type: fleetv1.UpdateServerSideApply, Force: true}})
	hub.set(work)
	testutil.Eventually(t, 30*time.Second, func() error {
		st, _ := hub.statusOf("app")
		c := condition(st, "Applied")
		if !(valueOf("soft") == "s" && c != nil && c.Status == "True" && st.ObservedGeneration == 3) {
			return fmt.Errorf("%+v", st)
		}
		return nil
	}, "soft forced back")
	events, _ := dyn.Resource(eventsGVR).Namespace("default").List(ctx, metav1.ListOptions{})
	if !slices.ContainsFunc(events.Items, func(e unstructured.Unstructured) bool {
		r, _, _ := unstructured.NestedString(e.Object, "reason")
		n, _, _ := unstructured.NestedString(e.Object, "involvedObject", "name")
		return r == ReasonDriftCorrected && n == "settings"
	}) {
		t.Error("no DriftCorrected event on settings")
	}

	// Restart: nothing is deleted or recreated.
	agent.stop()
	agent = runAgent(t, cfg)
	agent.settle(t, 2)
	_, puts = hub.statusOf("app")
	agent.settle(t, 2)
	for name, gvr := range map[string]schema.GroupVersionResource{"settings": cmGVR, "web": deployGVR, "bystander": cmGVR} {
		o, err := get(gvr, name)
		if err != nil || string(o.GetUID()) != uids[name] {
			t.Errorf("%s after restart: %v (uid %v, want %s)", name, err, o.GetUID(), uids[name])
		}
	}
	if _, again := hub.statusOf("app"); again != puts {
		t.Errorf("the restarted agent reported an unchanged status %d times", again-puts)
	}

	// A CRD and its resource in one work; the RESTMapper learns the kind.
	crd := map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "widgets.example.com"},
		"spec": map[string]any{"group": "example.com", "scope": "Namespaced",
			"names": map[string]any{"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}}
	widget := map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w1", "namespace": "default"}, "size": 3}
	kept := agentapi.WorkItem{Name: "kept", UID: "uid-kept", Generation: 1, Spec: fleetv1.ManifestWorkSpec{
		Workload:     fleetv1.ManifestsTemplate{Manifests: manifests(configMap("kept", "k"))},
		DeleteOption: &fleetv1.DeleteOption{PropagationPolicy: fleetv1.DeleteOrphan},
	}}
	widgets := agentapi.WorkItem{Name: "widgets", UID: "uid-widgets", Generation: 1, Spec: fleetv1.ManifestWorkSpec{
		Workload: fleetv1.ManifestsTemplate{Manifests: manifests(crd, widget)}}}
	hub.set(work, kept, widgets)
	widgetGVR := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	testutil.Eventually(t, 60*time.Second, func() error {
		_, err := get(widgetGVR, "w1")
		st, _ := hub.statusOf("widgets")
		if !(err == nil && condition(st, "Applied") != nil && condition(st, "Applied").Status == "True") {
			return fmt.Errorf("%v %+v", err, st)
		}
		return nil
	}, "the CRD's resource applied")

	// Deleting: kept is orphaned, app's and widgets' objects go; each work
	// is released at the hub with its UID.
	for _, w := range []*agentapi.WorkItem{&work, &kept, &widgets} {
		w.Deleting = true
	}
	hub.set(work, kept, widgets)
	testutil.Eventually(t, 90*time.Second, func() error {
		if !(hub.releasedUID("app") == "uid-app" && hub.releasedUID("kept") == "uid-kept" && hub.releasedUID("widgets") == "uid-widgets") {
			return fmt.Errorf("%v", hub.released)
		}
		return nil
	}, "works released")
	for name, gvr := range map[string]schema.GroupVersionResource{"settings": cmGVR, "web": deployGVR, "w1": widgetGVR, "soft": cmGVR, "once": cmGVR, "replaced": cmGVR} {
		if _, err := get(gvr, name); !apierrors.IsNotFound(err) {
			t.Errorf("%s still there after its work was deleted: %v", name, err)
		}
	}
	if _, err := get(cmGVR, "kept"); err != nil {
		t.Errorf("the orphaned ConfigMap went: %v", err)
	}
	if _, err := get(cmGVR, "bystander"); err != nil {
		t.Errorf("an unrelated ConfigMap went: %v", err)
	}
	recs, _ := dyn.Resource(cmGVR).Namespace(DefaultNamespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRecord})
	if len(recs.Items) != 0 {
		t.Errorf("records left: %d", len(recs.Items))
	}
	// A work the hub stops listing without deleting (its finalizer removed by
	// hand) is cleaned up from the record all the same.
	gone := agentapi.WorkItem{Name: "gone", UID: "uid-gone", Generation: 1, Spec: fleetv1.ManifestWorkSpec{
		Workload: fleetv1.ManifestsTemplate{Manifests: manifests(configMap("gone", "g"))}}}
	hub.set(gone)
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := get(cmGVR, "gone")
		if err != nil {
			return err
		}
		return nil
	}, "work gone applied")
	hub.set()
	testutil.Eventually(t, 30*time.Second, func() error {
		_, err := get(cmGVR, "gone")
		if !apierrors.IsNotFound(err) {
			return err
		}
		return nil
	}, "an unlisted work's objects removed")
}
