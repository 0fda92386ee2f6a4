package placement_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// scores is a QueryFunc over fixed per-cluster values that the test changes.
type scores struct {
	mu      sync.Mutex
	values  map[string]float64
	queries int
}

func (s *scores) set(v map[string]float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.values = v
}

func (s *scores) query(_ context.Context, expr string, ts time.Time) (promql.Vector, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries++
	var out promql.Vector
	for c, v := range s.values {
		out = append(out, promql.Sample{Metric: labels.FromStrings("cluster", c), T: ts.UnixMilli(), F: v})
	}
	return out, nil
}

// TestPlacementOnControlPlane runs the placement controller against a real
// control plane: selection by cluster set, predicate and name; a NoSelect
// taint moving the decision at once; PromQL ordering; score flips within the
// hysteresis moving nothing; and a lead beyond it moving the decision.
func TestPlacementOnControlPlane(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := &scores{}
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		return placement.SetupWithConfig(mgr, placement.Config{ScoreInterval: 200 * time.Millisecond, QueryTimeout: time.Second, Workers: 2},
			sc.query, testutil.Logger(t, slog.LevelInfo))
	}, controlplane.InNamespaces("apps"))
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}))
	for i, env := range []string{"prod", "prod", "prod", "dev"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d", i+1), Labels: map[string]string{fleetv1.LabelClusterSet: "prod", "env": env}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
	}

	// Two of the three prod clusters; with no scores to tell them apart,
	// by name.
	web := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"prod"}, NumberOfClusters: ptr.To[int32](2),
			Predicates: []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}},
	}
	require.NoError(t, kube.Create(ctx, web))
	require.NoError(t, kube.Get(ctx, client.ObjectKeyFromObject(web), web))
	if r := web.Spec.Rescheduling; r.Hysteresis != 10 || r.MinInterval.Duration != time.Minute {
		t.Errorf("rescheduling defaults %+v, want hysteresis 10 and minInterval 1m", r)
	}
	waitDecision(t, kube, "web", 5*time.Second, "c1", "c2")
	d := &fleetv1.PlacementDecision{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "web-decision-1"}, d))
	if d.Labels[fleetv1.LabelPlacement] != "web" || d.Labels[fleetv1.LabelDecisionGroupIndex] != "0" ||
		d.Labels[fleetv1.LabelSIGMCPlacementKey] != "web" || d.Labels[fleetv1.LabelSIGMCDecisionIndex] != "0" {
		t.Errorf("decision labels %v", d.Labels)
	}
	if owner := metav1.GetControllerOf(d); owner == nil || owner.UID != web.UID {
		t.Errorf("decision owned by %+v, want the placement", owner)
	}
	waitPlacement(t, kube, "web", 5*time.Second, func(p *fleetv1.Placement) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, fleetv1.PlacementConditionSatisfy)
		return p.Status.NumberOfSelectedClusters == 2 && c != nil && c.Status == metav1.ConditionTrue &&
			c.Message == "2 of 2 selected; 1 not matched by predicates" && len(p.Status.DecisionGroups) == 1 &&
			slices.Equal(p.Status.DecisionGroups[0].Decisions, []string{"web-decision-1"})
	})

	// A NoSelect taint on a selected cluster moves the decision to the third
	// at once, and says why.
	start := time.Now()
	setTaints(t, kube, "c1", fleetv1.Taint{Key: fleetv1.TaintUnreachable, Effect: fleetv1.TaintNoSelect, TimeAdded: metav1.Now()})
	waitDecision(t, kube, "web", 5*time.Second, "c2", "c3")
	t.Logf("the decision left the tainted cluster in %s", time.Since(start).Round(time.Millisecond))
	waitPlacement(t, kube, "web", 5*time.Second, func(p *fleetv1.Placement) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, fleetv1.PlacementConditionSatisfy)
		return c != nil && c.Status == metav1.ConditionTrue &&
			c.Message == "2 of 2 selected; 1 not matched by predicates; 1 excluded by taint fleetpulse.io/unreachable"
	})
	waitEvent(t, kube, "web", "ClusterDeselected", "c1 (score", "taint fleetpulse.io/unreachable")
	waitEvent(t, kube, "web", "ClusterSelected", "c3 selected")
	// The taint going does not move it back: c3 still qualifies.
	setTaints(t, kube, "c1")
	testutil.Consistently(t, 2*time.Second, func() error { return decisionIs(kube, "web", "c2", "c3") })

	// Deleting the placement deletes its decisions: the garbage collector
	// follows their owner references (checked at the end, since it picks up
	// new resource types only every 30 s).
	require.NoError(t, kube.Delete(ctx, web))
	defer waitGone(t, kube, &fleetv1.PlacementDecision{ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web-decision-1"}}, time.Minute)

	// A PromQL score orders the clusters.
	sc.set(map[string]float64{"c1": 10, "c2": 100, "c3": 50})
	scored := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "scored"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"prod"}, NumberOfClusters: ptr.To[int32](1),
			Predicates: []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}},
			PrioritizerPolicy: fleetv1.PrioritizerPolicy{Mode: placement.ModeExact, Configurations: []fleetv1.PrioritizerConfig{{
				ScoreCoordinate: fleetv1.ScoreCoordinate{Type: placement.ScorePromQL, PromQL: &fleetv1.PromQLScore{Query: `fleet_score`}}, Weight: 1}}},
			Rescheduling: fleetv1.Rescheduling{Hysteresis: 50, MinInterval: metav1.Duration{Duration: time.Second}}},
	}
	require.NoError(t, kube.Create(ctx, scored))
	waitDecision(t, kube, "scored", 5*time.Second, "c2")
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "scored-decision-1"}, d))
	if got := d.Status.Decisions[0]; got.Score != 100 || got.Reason != placement.ReasonSelected {
		t.Errorf("decision %+v, want c2 selected with score 100", got)
	}

	// Scores that flip every second by less than the hysteresis (c3 leads
	// by 22 of 50 half the time) move nothing.
	flipCtx, stopFlips := context.WithCancel(ctx)
	var flipped sync.WaitGroup
	flipped.Add(1)
	go func() {
		defer flipped.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i++ {
			if i%2 == 0 {
				sc.set(map[string]float64{"c1": 10, "c2": 90, "c3": 100})
			} else {
				sc.set(map[string]float64{"c1": 10, "c2": 100, "c3": 90})
			}
			select {
			case <-flipCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	sc.mu.Lock()
	before := sc.queries
	sc.mu.Unlock()
	testutil.Consistently(t, 5*time.Second, func() error { return decisionIs(kube, "scored", "c2") })
	stopFlips()
	flipped.Wait()
	sc.mu.Lock()
	if n := sc.queries - before; n < 10 {
		t.Errorf("only %d queries while the scores flipped: the controller did not look", n)
	}
	sc.mu.Unlock()
	require.NoError(t, kube.Get(ctx, client.ObjectKeyFromObject(scored), scored))
	if scored.Status.LastRescheduleTime != nil {
		t.Errorf("lastRescheduleTime %s: scores within the hysteresis moved the decision", scored.Status.LastRescheduleTime)
	}

	// A lead beyond the hysteresis moves it, and is recorded.
	sc.set(map[string]float64{"c1": 50, "c2": 10, "c3": 100})
	waitDecision(t, kube, "scored", 5*time.Second, "c3")
	waitEvent(t, kube, "scored", "Rescheduled", "moved from c2 (score -100) to c3 (score 100)")
	waitPlacement(t, kube, "scored", 5*time.Second, func(p *fleetv1.Placement) bool { return p.Status.LastRescheduleTime != nil })

	// A spread over zones takes the best of each zone, and moves a selected
	// cluster at once when a relabelled zone crowds, hysteresis or not.
	setLabel(t, kube, "c1", "zone", "b")
	setLabel(t, kube, "c2", "zone", "a")
	setLabel(t, kube, "c3", "zone", "b")
	spread := scored.DeepCopy()
	spread.ObjectMeta = metav1.ObjectMeta{Namespace: "apps", Name: "spread"}
	spread.Status = fleetv1.PlacementStatus{}
	spread.Spec.NumberOfClusters = ptr.To[int32](2)
	spread.Spec.Rescheduling.Hysteresis = 1000
	spread.Spec.SpreadPolicy.SpreadConstraints = []fleetv1.SpreadConstraint{{TopologyKey: "zone", TopologyKeyType: placement.TopologyKeyLabel, MaxSkew: 1}}
	require.NoError(t, kube.Create(ctx, spread))
	waitDecision(t, kube, "spread", 5*time.Second, "c2", "c3") // c1 outscores c2, but shares c3's zone
	waitPlacement(t, kube, "spread", 5*time.Second, func(p *fleetv1.Placement) bool {
		c := meta.FindStatusCondition(p.Status.Conditions, fleetv1.PlacementConditionSatisfy)
		return c != nil && c.Status == metav1.ConditionTrue && c.Message == "2 of 2 selected; 1 not matched by predicates"
	})
	setLabel(t, kube, "c3", "zone", "a")
	waitDecision(t, kube, "spread", 5*time.Second, "c1", "c3")
	waitEvent(t, kube, "spread", "ClusterDeselected", "c2 (score", "spread constraints make room for c1")

	// A placement without rescheduling gets its defaults from the API.
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": fleetv1.GroupVersion.String(), "kind": "Placement",
		"metadata": map[string]any{"namespace": "apps", "name": "bare"},
		"spec":     map[string]any{"numberOfClusters": int64(1)},
	}}
	require.NoError(t, kube.Create(ctx, u))
	bare := &fleetv1.Placement{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "apps", Name: "bare"}, bare))
	if r := bare.Spec.Rescheduling; r.Hysteresis != 10 || r.MinInterval.Duration != time.Minute {
		t.Errorf("rescheduling of a placement without it: %+v, want the defaults", r)
	}
}

func setTaints(t *testing.T, kube client.Client, cluster string, taints ...fleetv1.Taint) {
	t.Helper()
	mc := &fleetv1.ManagedCluster{}
	require.NoError(t, kube.Get(context.Background(), client.ObjectKey{Name: cluster}, mc))
	mc.Spec.Taints = taints
	require.NoError(t, kube.Update(context.Background(), mc))
}

func setLabel(t *testing.T, kube client.Client, cluster, key, value string) {
	t.Helper()
	mc := &fleetv1.ManagedCluster{}
	require.NoError(t, kube.Get(context.Background(), client.ObjectKey{Name: cluster}, mc))
	mc.Labels[key] = value
	require.NoError(t, kube.Update(context.Background(), mc))
}

// decisionIs checks a placement's decided clusters, over all its
// PlacementDecisions.
func decisionIs(kube client.Client, placementName string, want ...string) error {
	var list fleetv1.PlacementDecisionList
	if err := kube.List(context.Background(), &list, client.InNamespace("apps"), client.MatchingLabels{fleetv1.LabelPlacement: placementName}); err != nil {
		return err
	}
	var got []string
	for _, d := range list.Items {
		for _, cd := range d.Status.Decisions {
			got = append(got, cd.ClusterName)
		}
	}
	if !slices.Equal(got, want) {
		return fmt.Errorf("placement %s decided %v, want %v", placementName, got, want)
	}
	return nil
}

func waitDecision(t *testing.T, kube client.Client, placementName string, within time.Duration, want ...string) {
	t.Helper()
	testutil.Eventually(t, within, func() error { return decisionIs(kube, placementName, want...) })
}

func waitPlacement(t *testing.T, kube client.Client, name string, within time.Duration, ok func(*fleetv1.Placement) bool) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		p := &fleetv1.Placement{}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: "apps", Name: name}, p); err != nil {
			return err
		}
		if !ok(p) {
			return fmt.Errorf("placement %s status: %+v", name, p.Status)
		}
		return nil
	})
}

func waitEvent(t *testing.T, kube client.Client, regarding, reason string, notes ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		var list eventsv1.EventList
		if err := kube.List(context.Background(), &list, client.InNamespace("apps")); err != nil {
			return err
		}
		var seen []string
		for _, e := range list.Items {
			if e.Regarding.Name != regarding || e.Reason != reason {
				continue
			}
			seen = append(seen, e.Note)
			if containsAll(e.Note, notes) {
				return nil
			}
		}
		return fmt.Errorf("no %s event on %s saying %q; seen %q", reason, regarding, notes, seen)
	})
}

func waitGone(t *testing.T, kube client.Client, obj client.Object, within time.Duration) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		err := kube.Get(context.Background(), client.ObjectKeyFromObject(obj), obj)
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("%s still there (%v)", obj.GetName(), err)
	})
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
