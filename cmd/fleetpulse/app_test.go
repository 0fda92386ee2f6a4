package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func appTemplate(v string) fleetv1.ManifestWorkSpec {
	raw := fmt.Sprintf(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","namespace":"default"},"data":{"v":%q}}`, v)
	return fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{{RawExtension: runtime.RawExtension{Raw: []byte(raw)}}}}}
}

// TestAppCommands steers a set on a real control plane as an operator
// does, the hub's status written by the test in its place: status shows
// each cluster's revision, verdict and the gate value that decided it;
// history lists the revisions; pause, resume, approve and rollback write
// what the hub acts on.
func TestAppCommands(t *testing.T) {
	cp := controlplane.Start(t)
	ctx := context.Background()
	kube := cp.Client
	for _, ns := range []string{"shop", "app-east", "app-west"} {
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	mws := &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web"},
		Spec:       fleetv1.ManifestWorkSetSpec{ManifestWorkTemplate: appTemplate("v3"), PlacementRefs: []fleetv1.PlacementRef{{Name: "all"}}},
	}
	require.NoError(t, kube.Create(ctx, mws))
	for i, v := range []string{"v1", "v2", "v3"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManifestWorkSetRevision{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("web-%d", i+1)},
			Spec: fleetv1.ManifestWorkSetRevisionSpec{ManifestWorkSet: "web", Revision: int64(i + 1), TemplateHash: "hash" + v,
				ManifestWorkTemplate: appTemplate(v), ChangedBy: "alice", ChangeCause: "release " + v},
		}))
	}
	for cluster, rev := range map[string]string{"app-east": "3", "app-west": "2"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManifestWork{
			ObjectMeta: metav1.ObjectMeta{Namespace: cluster, Name: "web", Labels: map[string]string{
				fleetv1.LabelManifestWorkSet: "shop.web", fleetv1.LabelRevision: rev}},
			Spec: appTemplate("v" + rev),
		}))
	}
	now := metav1.NewTime(time.Now().Add(-time.Minute).Truncate(time.Second))
	mws.Status = fleetv1.ManifestWorkSetStatus{CurrentRevision: 3, StableRevision: 2,
		Revisions: []fleetv1.RevisionClusters{{Revision: 3, Clusters: 1}, {Revision: 2, Clusters: 1, Available: 1}},
		Rollout: &fleetv1.RolloutStatus{Revision: 3, PreviousRevision: 2, Phase: fleetv1.RolloutPaused, Reason: "FailureBudgetExceeded",
			Message: "stage 0 (all/group-0): 1 clusters failed, budget 0", CurrentStage: 0, StartTime: &now,
			Stages: []fleetv1.RolloutStageStatus{
				{Name: "all/group-0", Placement: "all", Clusters: 1, Failed: 1, Phase: fleetv1.StageProgressing, StartTime: &now},
				{Name: "all/group-1", Placement: "all", Clusters: 1, Phase: fleetv1.StagePending},
			},
			Clusters: []fleetv1.ClusterRolloutStatus{
				{Cluster: "app-east", Stage: 0, Verdict: fleetv1.VerdictFailed, UpdateTime: &now,
					Gates: []fleetv1.ClusterGateStatus{{Name: "crashloops", Failed: 1, Value: "3"}},
					DecidedBy: &fleetv1.RolloutDecision{Signal: fleetv1.SignalGate, Gate: "crashloops", Value: "3", Threshold: "value > 0",
						Query: `sum by (cluster) (k8s_cluster_container_waiting{cluster=~"app-east"})`, Time: now}},
				{Cluster: "app-west", Stage: 1, Verdict: fleetv1.VerdictPending},
			}}}
	require.NoError(t, kube.Status().Update(ctx, mws))
	kubeconfig := "--control-plane.kubeconfig=" + cp.KubeconfigPath

	out, err := run(t, "app", "status", "shop/web", kubeconfig)
	require.NoError(t, err, out)
	for _, want := range []string{
		"shop/web: revision 3, stable 2\n",
		"rollout of revision 3: Paused (FailureBudgetExceeded), stage 1 of 2\n",
		"stage 0 (all/group-0): 1 clusters failed, budget 0\n",
		"0      all/group-0  1         1/0     Progressing  1m",
		"app-east  0      3         Failed   Gate    crashloops  3      value > 0",
		"app-west  1      2         Pending  -       -           -      -",
		`app-east: sum by (cluster) (k8s_cluster_container_waiting{cluster=~"app-east"})`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}

	out, err = run(t, "app", "history", "web", "-n", "shop", kubeconfig)
	require.NoError(t, err, out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.Contains(lines[2], "alice  1         stable") || !strings.Contains(lines[3], "current,Paused") ||
		!strings.HasSuffix(lines[3], "release v3") {
		t.Errorf("history:\n%s", out)
	}

	get := func() *fleetv1.ManifestWorkSet {
		s := &fleetv1.ManifestWorkSet{}
		require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web"}, s))
		return s
	}
	out, err = run(t, "app", "pause", "shop/web", kubeconfig)
	require.NoError(t, err, out)
	if !get().Spec.Paused {
		t.Error("pause left spec.paused false")
	}
	out, err = run(t, "app", "resume", "shop/web", kubeconfig)
	require.NoError(t, err, out)
	if s := get(); s.Spec.Paused || s.Annotations[fleetv1.AnnotationResume] == "" {
		t.Errorf("after resume: paused %v, annotations %v", s.Spec.Paused, s.Annotations)
	}

	// approve: the rollout waits for none, so a stage must be named.
	if out, err := run(t, "app", "approve", "shop/web", kubeconfig); err == nil || !strings.Contains(err.Error(), "waits for no approval") {
		t.Errorf("approve without a waiting stage: %v\n%s", err, out)
	}
	out, err = run(t, "app", "approve", "shop/web", "--stage=1", "--approver=bob", "--comment=canary ok", kubeconfig)
	require.NoError(t, err, out)
	a := &fleetv1.RolloutApproval{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "shop", Name: "web-3-1"}, a))
	if a.Spec != (fleetv1.RolloutApprovalSpec{ManifestWorkSet: "web", Revision: 3, Stage: 1, Approver: "bob", Comment: "canary ok"}) {
		t.Errorf("approval %+v", a.Spec)
	}

	// rollback: to the stable revision by default, recorded.
	out, err = run(t, "app", "rollback", "shop/web", "--by=carol", kubeconfig)
	require.NoError(t, err, out)
	s := get()
	if !strings.Contains(string(s.Spec.ManifestWorkTemplate.Workload.Manifests[0].Raw), `"v2"`) ||
		s.Annotations[fleetv1.AnnotationRollbackOf] != "2" || s.Annotations[fleetv1.AnnotationChangedBy] != "carol" ||
		s.Annotations[fleetv1.AnnotationChangeCause] != "rollback to revision 2" {
		t.Errorf("after rollback: template %s, annotations %v", s.Spec.ManifestWorkTemplate.Workload.Manifests[0].Raw, s.Annotations)
	}
	out, err = run(t, "app", "rollback", "shop/web", "--to-revision=1", kubeconfig)
	require.NoError(t, err, out)
	if s := get(); !strings.Contains(string(s.Spec.ManifestWorkTemplate.Workload.Manifests[0].Raw), `"v1"`) ||
		s.Annotations[fleetv1.AnnotationChangedBy] != orDash(os.Getenv("USER")) && os.Getenv("USER") != "" {
		t.Errorf("after rollback to 1: template %s, annotations %v", s.Spec.ManifestWorkTemplate.Workload.Manifests[0].Raw, s.Annotations)
	}
	if _, err := run(t, "app", "rollback", "shop/web", "--to-revision=9", kubeconfig); err == nil || !strings.Contains(err.Error(), "revision 9 is not kept") {
		t.Errorf("rollback to a revision that is not kept: %v", err)
	}
}
