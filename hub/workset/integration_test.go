package workset_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/workset"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// The package's control-plane tests run one at a time: each runs its own
// controllers, which reconcile every namespace's sets on the shared control
// plane, and two rollout controllers deciding one set would fight.
func TestMain(m *testing.M) { controlplane.Main(m) }

func configMap(value string) fleetv1.ManifestWorkSpec {
	raw := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"app-config","namespace":"default"},"data":{"k":%q}}`, value)
	return fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{{RawExtension: runtime.RawExtension{Raw: []byte(raw)}}}}}
}

// TestManifestWorkSetOnControlPlane runs the placement and ManifestWorkSet
// controllers against a real control plane: works follow the decision when
// it moves, a progressive rollout updates one cluster at a time as works
// become Available, status sums the works up, and deleting the set deletes
// its works.
func TestManifestWorkSetOnControlPlane(t *testing.T) {
	cp := controlplane.Start(t)
	ctx := context.Background()
	logger := testutil.Logger(t, slog.LevelInfo)
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		cfg := placement.DefaultConfig()
		cfg.ScoreInterval = time.Second
		if err := placement.SetupWithConfig(mgr, cfg, nil, logger.With("component", "placement")); err != nil {
			return err
		}
		return workset.Setup(mgr, nil, nil, logger.With("component", "workset"))
	})
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "prod"}}))
	for _, c := range []string{"c1", "c2", "c3"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelClusterSet: "prod"}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
		// Registration makes an accepted cluster's namespace; it does not run here.
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelCluster: c}}}))
	}
	require.NoError(t, kube.Create(ctx, &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "web"},
		Spec:       fleetv1.PlacementSpec{ClusterSets: []string{"prod"}, NumberOfClusters: ptr.To[int32](2)},
	}))
	mws := &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: "app"},
		Spec:       fleetv1.ManifestWorkSetSpec{ManifestWorkTemplate: configMap("v1"), PlacementRefs: []fleetv1.PlacementRef{{Name: "web"}}},
	}
	require.NoError(t, kube.Create(ctx, mws))

	// One work per decided cluster, in its namespace, labelled with the set.
	waitWorks(t, kube, map[string]string{"c1": "v1", "c2": "v1"})
	w := &fleetv1.ManifestWork{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "c1", Name: "app"}, w))
	if w.Labels[fleetv1.LabelManifestWorkSet] != "apps.app" || len(w.OwnerReferences) != 0 {
		t.Errorf("work labels %v, owners %v; want the set's label and no owner", w.Labels, w.OwnerReferences)
	}
	waitSet(t, kube, func(s *fleetv1.ManifestWorkSet) error {
		if !slices.Contains(s.Finalizers, workset.Finalizer) {
			return fmt.Errorf("no finalizer: %v", s.Finalizers)
		}
		return checkConditions(s, fleetv1.WorkSummary{Total: 2},
			cond{workset.ConditionPlacementVerified, metav1.ConditionTrue, "placement web decides 2 clusters"},
			cond{workset.ConditionProgressing, metav1.ConditionTrue, "revision 1: stage 1 of 1 (web/all): 0 of 2 clusters done, 0 failed (budget 0)"},
			cond{workset.ConditionAvailable, metav1.ConditionFalse, "0 of 2 works available"})
	})

	// The agents report the works applied and available.
	markAvailable(t, kube, "c1")
	markAvailable(t, kube, "c2")
	waitSet(t, kube, func(s *fleetv1.ManifestWorkSet) error {
		return checkConditions(s, fleetv1.WorkSummary{Total: 2, Applied: 2, Available: 2},
			cond{workset.ConditionProgressing, metav1.ConditionFalse, "revision 1 rolled out"},
			cond{workset.ConditionAvailable, metav1.ConditionTrue, "2 of 2 works available"})
	})

	// The decision moves off a tainted cluster, and the work with it.
	mc := &fleetv1.ManagedCluster{}
	testutil.Eventually(t, 5*time.Second, func() error {
		if err := kube.Get(ctx, client.ObjectKey{Name: "c1"}, mc); err != nil {
			return err
		}
		mc.Spec.Taints = []fleetv1.Taint{{Key: fleetv1.TaintUnreachable, Effect: fleetv1.TaintNoSelect, TimeAdded: metav1.Now()}}
		return kube.Update(ctx, mc)
	})
	start := time.Now()
	waitWorks(t, kube, map[string]string{"c2": "v1", "c3": "v1"})
	t.Logf("the work followed the decision in %s", time.Since(start).Round(time.Millisecond))
	markAvailable(t, kube, "c3")

	// A progressive rollout of a new template, one cluster at a time: c3
	// waits until c2's work is Available for the new generation.
	testutil.Eventually(t, 5*time.Second, func() error {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(mws), mws); err != nil {
			return err
		}
		mws.Spec.ManifestWorkTemplate = configMap("v2")
		mws.Spec.PlacementRefs[0].RolloutStrategy = fleetv1.RolloutStrategy{Type: workset.RolloutProgressive, MaxConcurrency: ptr.To(intstr.FromInt32(1))}
		return kube.Update(ctx, mws) // the controller writes status meanwhile
	})
	waitWorks(t, kube, map[string]string{"c2": "v2", "c3": "v1"})
	testutil.Consistently(t, 2*time.Second, func() error { return worksAre(kube, map[string]string{"c2": "v2", "c3": "v1"}) })
	waitSet(t, kube, func(s *fleetv1.ManifestWorkSet) error {
		return checkConditions(s, fleetv1.WorkSummary{Total: 2, Applied: 2, Available: 2},
			cond{workset.ConditionProgressing, metav1.ConditionTrue, "revision 2: stage 1 of 2 (web/batch-0): 0 of 1 clusters done, 0 failed (budget 0)"})
	})
	markAvailable(t, kube, "c2")
	waitWorks(t, kube, map[string]string{"c2": "v2", "c3": "v2"})
	markAvailable(t, kube, "c3")
	waitSet(t, kube, func(s *fleetv1.ManifestWorkSet) error {
		return checkConditions(s, fleetv1.WorkSummary{Total: 2, Applied: 2, Available: 2},
			cond{workset.ConditionProgressing, metav1.ConditionFalse, "revision 2 rolled out"})
	})

	// Deleting the set deletes its works.
	require.NoError(t, kube.Delete(ctx, mws))
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := worksAre(kube, map[string]string{}); err != nil {
			return err
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(mws), &fleetv1.ManifestWorkSet{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("the set is still there (%v)", err)
		}
		return nil
	})
}

type cond struct {
	typ     string
	status  metav1.ConditionStatus
	message string
}

func checkConditions(s *fleetv1.ManifestWorkSet, summary fleetv1.WorkSummary, conds ...cond) error {
	if s.Status.Summary != summary {
		return fmt.Errorf("summary %+v, want %+v", s.Status.Summary, summary)
	}
	for _, want := range conds {
		c := meta.FindStatusCondition(s.Status.Conditions, want.typ)
		if c == nil || c.Status != want.status || c.Message != want.message || c.ObservedGeneration != s.Generation {
			return fmt.Errorf("condition %s = %+v, want %s %q", want.typ, c, want.status, want.message)
		}
	}
	return nil
}

// markAvailable does what a cluster's agent does once it has applied its
// work and found it available.
func markAvailable(t *testing.T, kube client.Client, cluster string) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		w := &fleetv1.ManifestWork{}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: cluster, Name: "app"}, w); err != nil {
			return err
		}
		w.Status.ObservedGeneration = w.Generation
		for _, typ := range []string{fleetv1.WorkApplied, fleetv1.WorkAvailable} {
			meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: "AsExpected", ObservedGeneration: w.Generation})
		}
		meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: fleetv1.WorkProgressing, Status: metav1.ConditionFalse, Reason: "Completed", ObservedGeneration: w.Generation})
		return kube.Status().Update(context.Background(), w)
	})
}

// worksAre checks the set's works: the clusters that have one and the
// value of its ConfigMap.
func worksAre(kube client.Client, want map[string]string) error {
	var list fleetv1.ManifestWorkList
	if err := kube.List(context.Background(), &list, client.MatchingLabels{fleetv1.LabelManifestWorkSet: "apps.app"}); err != nil {
		return err
	}
	got := map[string]string{}
	for _, w := range list.Items {
		if w.DeletionTimestamp != nil {
			continue
		}
		v := "?"
		for _, val := range []string{"v1", "v2"} {
			if strings.Contains(string(w.Spec.Workload.Manifests[0].Raw), `"`+val+`"`) {
				v = val
			}
		}
		got[w.Namespace] = v
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("works %v, want %v", got, want)
	}
	return nil
}

func waitWorks(t *testing.T, kube client.Client, want map[string]string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error { return worksAre(kube, want) })
}

func waitSet(t *testing.T, kube client.Client, check func(*fleetv1.ManifestWorkSet) error) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		s := &fleetv1.ManifestWorkSet{}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: "apps", Name: "app"}, s); err != nil {
			return err
		}
		return check(s)
	})
}
