package workset_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// fleet is a namespace of sets on the package's control plane with its own
// clusters, all decided by one Placement, so tests run side by side.
type fleet struct {
	t        *testing.T
	kube     client.Client
	ns       string
	clusters []string
}

func newFleet(t *testing.T, ns string, clusters ...string) *fleet {
	t.Helper()
	cp := controlplane.Start(t)
	ctx := context.Background()
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for _, c := range clusters {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelClusterSet: ns}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelCluster: c}}}))
	}
	return &fleet{t: t, kube: kube, ns: ns, clusters: clusters}
}

// placement decides every cluster of the fleet, in decision groups of
// perGroup (0: one group).
func (f *fleet) placement(name string, perGroup int32) {
	f.t.Helper()
	p := &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: name},
		Spec:       fleetv1.PlacementSpec{ClusterSets: []string{f.ns}, NumberOfClusters: ptr.To(int32(len(f.clusters)))},
	}
	if perGroup > 0 {
		p.Spec.DecisionStrategy = fleetv1.DecisionStrategy{ClustersPerDecisionGroup: perGroup}
	}
	require.NoError(f.t, f.kube.Create(context.Background(), p))
}

func (f *fleet) set(name string) *fleetv1.ManifestWorkSet {
	s := &fleetv1.ManifestWorkSet{}
	if err := f.kube.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
		f.t.Fatalf("get set %s: %v", name, err)
	}
	return s
}

// edit changes a set, retrying while the controller writes its status.
func (f *fleet) edit(name string, change func(*fleetv1.ManifestWorkSet)) {
	f.t.Helper()
	testutil.Eventually(f.t, 5*time.Second, func() error {
		s := &fleetv1.ManifestWorkSet{}
		if err := f.kube.Get(context.Background(), client.ObjectKey{Namespace: f.ns, Name: name}, s); err != nil {
			return err
		}
		change(s)
		return f.kube.Update(context.Background(), s)
	})
}

func (f *fleet) waitSet(name string, within time.Duration, check func(*fleetv1.ManifestWorkSet) error) {
	f.t.Helper()
	testutil.Eventually(f.t, within, func() error { return check(f.set(name)) })
}

// revisionsOf lists a set's revision numbers, oldest first.
func (f *fleet) revisionsOf(name string) []fleetv1.ManifestWorkSetRevision {
	var list fleetv1.ManifestWorkSetRevisionList
	require.NoError(f.t, f.kube.List(context.Background(), &list, client.InNamespace(f.ns)))
	var out []fleetv1.ManifestWorkSetRevision
	for _, r := range list.Items {
		if r.Spec.ManifestWorkSet == name {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b fleetv1.ManifestWorkSetRevision) int { return int(a.Spec.Revision - b.Spec.Revision) })
	return out
}

// workRevisions maps each cluster with a work of the set to the revision
// label it carries.
func (f *fleet) workRevisions(name string) map[string]string {
	var list fleetv1.ManifestWorkList
	require.NoError(f.t, f.kube.List(context.Background(), &list, client.MatchingLabels{fleetv1.LabelManifestWorkSet: f.ns + "." + name}))
	out := map[string]string{}
	for _, w := range list.Items {
		if w.DeletionTimestamp == nil {
			out[w.Namespace] = w.Labels[fleetv1.LabelRevision]
		}
	}
	return out
}

// TestRevisionsOnControlPlane: each template change writes a numbered,
// immutable revision with who and why; works carry the revision label;
// status counts clusters per revision; old revisions are pruned past the
// history limit but for those a cluster still runs.
func TestRevisionsOnControlPlane(t *testing.T) {
	f := newFleet(t, "revs", "rv1", "rv2")
	logger := testutil.Logger(t, slog.LevelInfo)
	controlplane.Start(t).StartManager(t, func(mgr ctrl.Manager) error {
		if err := placement.SetupWithConfig(mgr, placement.DefaultConfig(), nil, logger.With("component", "placement")); err != nil {
			return err
		}
		return workset.Setup(mgr, nil, nil, logger.With("component", "workset"))
	})
	ctx := context.Background()
	f.placement("all", 0)
	require.NoError(t, f.kube.Create(ctx, &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "app", Annotations: map[string]string{
			fleetv1.AnnotationChangeCause: "first release", fleetv1.AnnotationChangedBy: "alice"}},
		Spec: fleetv1.ManifestWorkSetSpec{ManifestWorkTemplate: configMap("v1"), PlacementRefs: []fleetv1.PlacementRef{{Name: "all"}},
			RevisionHistoryLimit: ptr.To[int32](2)},
	}))
	f.waitSet("app", 10*time.Second, func(s *fleetv1.ManifestWorkSet) error {
		if s.Status.CurrentRevision != 1 || fmt.Sprint(s.Status.Revisions) != "[{1 2 0}]" {
			return fmt.Errorf("revision %d, per revision %v; want 1, [{1 2 0}]", s.Status.CurrentRevision, s.Status.Revisions)
		}
		return nil
	})
	if got := f.workRevisions("app"); fmt.Sprint(got) != "map[rv1:1 rv2:1]" {
		t.Errorf("work revisions %v, want revision 1 on both", got)
	}
	r1 := f.revisionsOf("app")
	require.Len(t, r1, 1)
	if s := r1[0].Spec; s.ChangeCause != "first release" || s.ChangedBy != "alice" || r1[0].Name != "app-1" || s.TemplateHash == "" {
		t.Errorf("revision 1 = %s %+v, want app-1 by alice for the first release", r1[0].Name, s)
	}
	if owner := metav1.GetControllerOf(&r1[0]); owner == nil || owner.Kind != "ManifestWorkSet" || owner.Name != "app" {
		t.Errorf("revision 1 owner %v, want the set", owner)
	}

	// The apiserver refuses to change a revision.
	r1[0].Spec.ChangeCause = "rewritten history"
	if err := f.kube.Update(ctx, &r1[0]); err == nil {
		t.Error("a revision's spec was updated; want it refused as immutable")
	}

	// A change without who: the field manager that wrote the spec.
	f.edit("app", func(s *fleetv1.ManifestWorkSet) {
		s.Spec.ManifestWorkTemplate = configMap("v2")
		s.Annotations = map[string]string{fleetv1.AnnotationChangeCause: "second release"}
	})
	f.waitSet("app", 10*time.Second, func(s *fleetv1.ManifestWorkSet) error {
		if s.Status.CurrentRevision != 2 || fmt.Sprint(s.Status.Revisions) != "[{2 2 0}]" {
			return fmt.Errorf("revision %d, per revision %v; want 2, [{2 2 0}]", s.Status.CurrentRevision, s.Status.Revisions)
		}
		return nil
	})
	r2 := f.revisionsOf("app")
	if len(r2) != 2 || r2[1].Spec.ChangeCause != "second release" || r2[1].Spec.ChangedBy == "" || r2[1].Spec.ChangedBy == "alice" {
		t.Errorf("revisions after the second change: %+v; want revision 2 by the client's field manager", r2)
	}

	// A progressive change halfway: clusters split between revisions, and
	// the count per revision shows it.
	f.edit("app", func(s *fleetv1.ManifestWorkSet) {
		s.Spec.ManifestWorkTemplate = configMap("v3")
		s.Spec.PlacementRefs[0].RolloutStrategy = fleetv1.RolloutStrategy{Type: workset.RolloutProgressive, MaxConcurrency: ptr.To(intstr.FromInt32(1))}
	})
	f.waitSet("app", 10*time.Second, func(s *fleetv1.ManifestWorkSet) error {
		if s.Status.CurrentRevision != 3 || fmt.Sprint(s.Status.Revisions) != "[{3 1 0} {2 1 0}]" {
			return fmt.Errorf("revision %d, per revision %v; want 3, [{3 1 0} {2 1 0}]", s.Status.CurrentRevision, s.Status.Revisions)
		}
		return nil
	})
	// History limit 2, but revision 2 still runs on a cluster: 2 and 3 stay,
	// 1 goes.
	testutil.Eventually(t, 5*time.Second, func() error {
		var got []int64
		for _, r := range f.revisionsOf("app") {
			got = append(got, r.Spec.Revision)
		}
		if fmt.Sprint(got) != "[2 3]" {
			return fmt.Errorf("revisions %v, want [2 3]", got)
		}
		return nil
	})
}
