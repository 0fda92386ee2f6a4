package workset_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"helm.sh/helm/v3/pkg/chart"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/chartsource"
	"github.com/fleetpulse/fleetpulse/hub/chartsource/charttest"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/workset"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// greeter is a chart of one ConfigMap whose greeting comes from values.
func greeter(version string) *chart.Chart {
	return charttest.Chart("greeter", version, "greeting: hello\n", map[string]string{"cm.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  chart: {{ .Chart.Version | quote }}
`})
}

func values(t *testing.T, v map[string]any) *runtime.RawExtension {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return &runtime.RawExtension{Raw: b}
}

// renderedData is the data of the chart's ConfigMap in a revision.
func renderedData(t *testing.T, rev fleetv1.ManifestWorkSetRevision) map[string]string {
	ms := rev.Spec.ManifestWorkTemplate.Workload.Manifests
	require.NotEmpty(t, ms)
	var cm corev1.ConfigMap
	require.NoError(t, json.Unmarshal(ms[len(ms)-1].Raw, &cm))
	return cm.Data
}

// TestChartSourceOnControlPlane delivers a Helm chart from a private
// repository (credentials from a Secret): version 1.0.0 renders into
// revision 1 and reaches every cluster; the upgrade to 2.0.0 with new
// values is revision 2 and rolls out group by group behind approvals; a
// version the repository lacks says ChartNotFound while revision 2 goes on;
// putting 1.0.0's source back reuses revision 1's objects although the
// repository is gone.
func TestChartSourceOnControlPlane(t *testing.T) {
	f := newFleet(t, "charts", "h1", "h2", "h3")
	repo := charttest.Serve(t, "fleet", "chart-pw", greeter("1.0.0"))
	logger := testutil.Logger(t, slog.LevelInfo)
	cfg := workset.DefaultConfig()
	cfg.ChartRetry = time.Second
	controlplane.Start(t).StartManager(t, func(mgr ctrl.Manager) error {
		if err := placement.SetupWithConfig(mgr, placement.DefaultConfig(), nil, logger.With("component", "placement")); err != nil {
			return err
		}
		return workset.SetupWithConfig(mgr, cfg, nil, nil, logger.With("component", "workset"))
	})
	ctx := context.Background()
	f.placement("all", 1)
	f.agent("greeter")
	require.NoError(t, f.kube.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "chart-repo"},
		Data: map[string][]byte{"username": []byte("fleet"), "password": []byte("chart-pw")}}))
	strategy := fleetv1.RolloutStrategy{Type: workset.RolloutProgressivePerGroup}
	require.NoError(t, f.kube.Create(ctx, &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "greeter"},
		Spec: fleetv1.ManifestWorkSetSpec{
			Chart: &fleetv1.HelmChartSource{RepoURL: repo.URL, Chart: "greeter", Version: "1.0.0", Namespace: "apps",
				CredentialsSecretRef: &fleetv1.LocalSecretReference{Name: "chart-repo"}},
			PlacementRefs: []fleetv1.PlacementRef{{Name: "all", RolloutStrategy: strategy}}},
	}))
	rollout := func(revision int64, phase fleetv1.RolloutPhase) func(*fleetv1.ManifestWorkSet) error {
		return func(s *fleetv1.ManifestWorkSet) error {
			if ro := s.Status.Rollout; ro == nil || ro.Revision != revision || ro.Phase != phase {
				return fmt.Errorf("rollout %+v, want revision %d %s", ro, revision, phase)
			}
			return nil
		}
	}
	chartCond := func(status metav1.ConditionStatus, reason, msg string) func(*fleetv1.ManifestWorkSet) error {
		return func(s *fleetv1.ManifestWorkSet) error {
			c := meta.FindStatusCondition(s.Status.Conditions, fleetv1.ConditionChartRendered)
			if c == nil || c.Status != status || c.Reason != reason || !strings.Contains(c.Message, msg) || c.ObservedGeneration != s.Generation {
				return fmt.Errorf("ChartRendered %+v, want %s %s with %q", c, status, reason, msg)
			}
			return nil
		}
	}
	f.waitSet("greeter", 30*time.Second, rollout(1, fleetv1.RolloutSucceeded))
	f.waitSet("greeter", 5*time.Second, chartCond(metav1.ConditionTrue, workset.ReasonRendered, "chart greeter 1.0.0 from "+repo.URL+"/greeter-1.0.0.tgz: 1 objects in revision 1"))
	revs := f.revisionsOf("greeter")
	require.Len(t, revs, 1)
	require.Equal(t, map[string]string{"greeting": "hello", "chart": "1.0.0"}, renderedData(t, revs[0]))
	require.Equal(t, "1.0.0", revs[0].Spec.Chart.Version)
	require.True(t, strings.HasPrefix(revs[0].Spec.Chart.Digest, "sha256:"))
	require.Equal(t, "map[h1:1 h2:1 h3:1]", fmt.Sprint(f.workRevisions("greeter")))

	// The upgrade: chart 2.0.0 with a new greeting, one group at a time.
	repo.Add(greeter("2.0.0"))
	f.edit("greeter", func(s *fleetv1.ManifestWorkSet) {
		s.Spec.Chart.Version = "2.0.0"
		s.Spec.Chart.Values = values(t, map[string]any{"greeting": "bonjour"})
		s.Spec.PlacementRefs[0].RolloutStrategy.ApprovalBeforeStages = []int32{1, 2}
	})
	f.waitSet("greeter", 30*time.Second, rollout(2, fleetv1.RolloutWaitingApproval))
	require.Equal(t, "map[h1:2 h2:1 h3:1]", fmt.Sprint(f.workRevisions("greeter")))
	revs = f.revisionsOf("greeter")
	require.Len(t, revs, 2)
	require.Equal(t, map[string]string{"greeting": "bonjour", "chart": "2.0.0"}, renderedData(t, revs[1]))
	for stage, want := range map[int32]string{1: "map[h1:2 h2:2 h3:1]"} {
		require.NoError(t, f.kube.Create(ctx, &fleetv1.RolloutApproval{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: fmt.Sprintf("greeter-2-%d", stage)},
			Spec: fleetv1.RolloutApprovalSpec{ManifestWorkSet: "greeter", Revision: 2, Stage: stage, Approver: "alice"}}))
		testutil.Eventually(t, 30*time.Second, func() error {
			if got := fmt.Sprint(f.workRevisions("greeter")); got != want {
				return fmt.Errorf("works on %s, want %s", got, want)
			}
			return rollout(2, fleetv1.RolloutWaitingApproval)(f.set("greeter"))
		})
	}
	require.NoError(t, f.kube.Create(ctx, &fleetv1.RolloutApproval{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "greeter-2-2"},
		Spec: fleetv1.RolloutApprovalSpec{ManifestWorkSet: "greeter", Revision: 2, Stage: 2, Approver: "alice"}}))
	f.waitSet("greeter", 30*time.Second, rollout(2, fleetv1.RolloutSucceeded))
	require.Equal(t, "map[h1:2 h2:2 h3:2]", fmt.Sprint(f.workRevisions("greeter")))

	// A version the repository lacks: no revision, the reason in status.
	f.edit("greeter", func(s *fleetv1.ManifestWorkSet) { s.Spec.Chart.Version = "9.9.9" })
	f.waitSet("greeter", 30*time.Second, chartCond(metav1.ConditionFalse, chartsource.ReasonNotFound, `version "9.9.9" is not in`))
	s := f.set("greeter")
	require.Contains(t, meta.FindStatusCondition(s.Status.Conditions, fleetv1.ConditionChartRendered).Message, "revision 2 goes on")
	require.EqualValues(t, 2, s.Status.CurrentRevision)
	require.Len(t, f.revisionsOf("greeter"), 2)
	require.Equal(t, "map[h1:2 h2:2 h3:2]", fmt.Sprint(f.workRevisions("greeter")))

	// Back to revision 1's source with the repository unusable: its
	// objects come from the revision, not the repository.
	repo.WriteFile("index.yaml", []byte("not an index"))
	f.edit("greeter", func(s *fleetv1.ManifestWorkSet) {
		s.Spec.Chart = revs[0].Spec.Chart.Source.DeepCopy()
		s.Spec.PlacementRefs[0].RolloutStrategy.ApprovalBeforeStages = nil
		s.Annotations = map[string]string{fleetv1.AnnotationRollbackOf: "1"}
	})
	f.waitSet("greeter", 30*time.Second, rollout(3, fleetv1.RolloutSucceeded))
	f.waitSet("greeter", 5*time.Second, chartCond(metav1.ConditionTrue, workset.ReasonRendered, "revision 3"))
	revs = f.revisionsOf("greeter")
	require.Len(t, revs, 3)
	require.Equal(t, revs[0].Spec.TemplateHash, revs[2].Spec.TemplateHash)
	require.EqualValues(t, 1, revs[2].Spec.RollbackOf)
	require.Equal(t, "map[h1:3 h2:3 h3:3]", fmt.Sprint(f.workRevisions("greeter")))
	var secretSeen bool
	for _, r := range revs {
		b, _ := json.Marshal(r)
		secretSeen = secretSeen || strings.Contains(string(b), "chart-pw")
	}
	require.False(t, secretSeen, "the repository's password is in a revision")

}
