package placement_test

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// argoDuckTypeConfigMap is the ConfigMap docs/rollouts.md tells Argo CD
// users to create: what the clusterDecisionResource generator lists.
var argoDuckTypeConfigMap = map[string]string{
	"apiVersion":    "fleetpulse.io/v1alpha1",
	"kind":          "placementdecisions",
	"statusListKey": "decisions",
	"matchKey":      "clusterName",
}

// argoCluster is an Argo CD cluster secret's name and server.
type argoCluster struct{ name, server string }

// argoDuckTypeParams reads decision resources as Argo CD's
// clusterDecisionResource generator does (applicationset/generators/
// duck_type.go, DuckTypeGenerator.GenerateParams): it lists the resource
// named by the ConfigMap's apiVersion and kind (kind is the plural
// resource name) in Argo CD's namespace with the generator's label
// selector, as unstructured objects; concatenates every object's
// status[statusListKey]; keeps each entry whose matchKey names a cluster
// Argo CD knows; and makes a parameter of every field of the entry, each
// of which must be a string (Argo asserts value.(string): any other type
// stops the generator). Where Argo would fail, this returns an error.
func argoDuckTypeParams(ctx context.Context, dyn dynamic.Interface, cm map[string]string, namespace string,
	selector *metav1.LabelSelector, known []argoCluster) ([]map[string]string, error) {
	i := strings.Index(cm["apiVersion"], "/")
	if cm["kind"] == "" || i < 1 {
		return nil, fmt.Errorf("the ConfigMap's apiVersion %q or kind %q", cm["apiVersion"], cm["kind"])
	}
	gvr := schema.GroupVersionResource{Group: cm["apiVersion"][:i], Version: cm["apiVersion"][i+1:], Resource: cm["kind"]}
	list, err := dyn.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(selector)})
	if err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no clusterDecisionResources found")
	}
	statusListKey := cm["statusListKey"]
	if statusListKey == "" {
		statusListKey = "clusters"
	}
	var decisions []any
	for _, obj := range list.Items {
		st, ok := obj.Object["status"].(map[string]any)
		if !ok || len(st) == 0 {
			continue
		}
		entries, ok := st[statusListKey].([]any)
		if !ok {
			return nil, fmt.Errorf("%s: status.%s is %T, not a list", obj.GetName(), statusListKey, st[statusListKey])
		}
		decisions = append(decisions, entries...)
	}
	var out []map[string]string
	for _, d := range decisions {
		entry, ok := d.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("decision %v is %T, not an object", d, d)
		}
		match, ok := entry[cm["matchKey"]].(string)
		if !ok || match == "" {
			continue
		}
		i := slices.IndexFunc(known, func(c argoCluster) bool { return c.name == match })
		if i < 0 {
			continue
		}
		params := map[string]string{"name": known[i].name, "server": known[i].server}
		for k, v := range entry {
			s, ok := v.(string)
			if !ok {
				return nil, fmt.Errorf("decision of %s: field %s is %T (%v), and Argo CD takes strings only", match, k, v, v)
			}
			params[k] = s
		}
		out = append(out, params)
	}
	return out, nil
}

// argoRuns numbers the runs of TestPlacementDecisionsAsArgoCDClusterDecisionResource
// in this process (go test -count), which name their objects apart: the
// control plane outlives a run, and without a namespace controller a deleted
// namespace never goes.
var argoRuns atomic.Int32

// TestPlacementDecisionsAsArgoCDClusterDecisionResource checks, on a real
// control plane, that the PlacementDecisions the placement controller
// writes give Argo CD's clusterDecisionResource generator, configured as
// docs/rollouts.md says, one parameter set per decided cluster that Argo
// CD knows: across the several PlacementDecisions of a grouped placement,
// with the clusters' scores as strings, and none of another placement in the
// same namespace.
func TestPlacementDecisionsAsArgoCDClusterDecisionResource(t *testing.T) {
	t.Parallel()
	run := argoRuns.Add(1)
	ns, set := fmt.Sprintf("argocd-%d", run), fmt.Sprintf("argo-%d", run)
	cluster := func(i int) string { return fmt.Sprintf("argo-%d-c%d", run, i) }
	cp := controlplane.Start(t)
	ctx := context.Background()
	sc := &scores{}
	sc.set(map[string]float64{cluster(1): 10, cluster(2): 100, cluster(3): 50, cluster(4): 70, cluster(5): 20})
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		return placement.SetupWithConfig(mgr, placement.Config{ScoreInterval: 200 * time.Millisecond, QueryTimeout: time.Second, Workers: 2},
			sc.query, testutil.Logger(t, slog.LevelInfo))
	}, controlplane.InNamespaces(ns))
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: set}}))
	for i := 1; i <= 5; i++ {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: cluster(i), Labels: map[string]string{fleetv1.LabelClusterSet: set}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
	}
	// guestbook: the four best of five by score, in groups of two (two
	// PlacementDecisions); other: one cluster, in the same namespace.
	guestbook := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "guestbook"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{set}, NumberOfClusters: ptr.To[int32](4),
			DecisionStrategy: fleetv1.DecisionStrategy{ClustersPerDecisionGroup: 2},
			PrioritizerPolicy: fleetv1.PrioritizerPolicy{Mode: placement.ModeExact, Configurations: []fleetv1.PrioritizerConfig{{
				ScoreCoordinate: fleetv1.ScoreCoordinate{Type: placement.ScorePromQL, PromQL: &fleetv1.PromQLScore{Query: `fleet_score`}}, Weight: 1}}}},
	}
	other := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "other"},
		Spec:       fleetv1.PlacementSpec{ClusterSets: []string{set}, NumberOfClusters: ptr.To[int32](1)},
	}
	require.NoError(t, kube.Create(ctx, guestbook))
	require.NoError(t, kube.Create(ctx, other))

	dyn, err := dynamic.NewForConfig(cp.RESTConfig)
	require.NoError(t, err)
	// Argo CD knows clusters 1 to 4 (cluster secrets); 5 it does not.
	var known []argoCluster
	for i := 1; i <= 4; i++ {
		known = append(known, argoCluster{cluster(i), "https://" + cluster(i) + ".example:6443"})
	}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{fleetv1.LabelPlacement: "guestbook"}}
	// The four best by score are clusters 2, 4, 5 and 3; normalised over the
	// five, their scores are 100, 33, -78 and -11. The first pass may see
	// fewer clusters, and score them otherwise: wait for these, and for
	// other's one cluster, in PlacementDecisions apart.
	wantScores := map[string]fleetv1.DecisionScore{cluster(2): 100, cluster(3): -11, cluster(4): 33, cluster(5): -78}
	testutil.Eventually(t, 10*time.Second, func() error {
		p := &fleetv1.Placement{}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(guestbook), p); err != nil {
			return err
		}
		if p.Status.NumberOfSelectedClusters != 4 || len(p.Status.DecisionGroups) != 2 {
			return fmt.Errorf("placement status %+v, want 4 clusters in 2 groups", p.Status)
		}
		var list fleetv1.PlacementDecisionList
		if err := kube.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		got := map[string]fleetv1.DecisionScore{}
		objects, others := map[string]int{}, 0
		for _, d := range list.Items {
			objects[d.Labels[fleetv1.LabelPlacement]]++
			for _, c := range d.Status.Decisions {
				if d.Labels[fleetv1.LabelPlacement] == "guestbook" {
					got[c.ClusterName] = c.Score
				} else {
					others++
				}
			}
		}
		if !maps.Equal(got, wantScores) {
			return fmt.Errorf("guestbook decided %v, want %v", got, wantScores)
		}
		if objects["guestbook"] != 2 || objects["other"] != 1 || len(objects) != 2 || others != 1 {
			return fmt.Errorf("PlacementDecisions by placement %v deciding %d clusters for other, want guestbook 2 (two groups) and other 1 deciding 1", objects, others)
		}
		return nil
	})
	got, err := argoDuckTypeParams(ctx, dyn, argoDuckTypeConfigMap, ns, selector, known)
	require.NoError(t, err)
	slices.SortFunc(got, func(a, b map[string]string) int { return strings.Compare(a["name"], b["name"]) })

	// Argo CD does not know cluster 5, so it makes no Application for it;
	// the others' parameters are their decisions, the score a string.
	var want []map[string]string
	for i, score := range map[int]string{2: "100", 3: "-11", 4: "33"} {
		want = append(want, map[string]string{"name": cluster(i), "server": "https://" + cluster(i) + ".example:6443",
			"clusterName": cluster(i), "reason": placement.ReasonSelected, "score": score})
	}
	slices.SortFunc(want, func(a, b map[string]string) int { return strings.Compare(a["name"], b["name"]) })
	if !slices.EqualFunc(got, want, maps.Equal) {
		t.Errorf("parameter sets %v, want %v", got, want)
	}
}
