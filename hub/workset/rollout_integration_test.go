package workset_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/workset"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// telemetry is a real TSDB and PromQL engine, the store the hub's gates
// read, which the test writes the clusters' series into.
type telemetry struct {
	t  *testing.T
	db *teststorage.TestStorage
	q  query.QueryFunc
}

func newTelemetry(t *testing.T) *telemetry {
	db := teststorage.New(t)
	t.Cleanup(func() { _ = db.Close() })
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: time.Minute})
	return &telemetry{t: t, db: db, q: query.InstantQueryFunc(engine, db)}
}

// set writes app_error_ratio of a cluster's revision now.
func (m *telemetry) set(cluster string, revision int, v float64) {
	m.t.Helper()
	app := m.db.Appender(context.Background())
	_, err := app.Append(0, labels.FromStrings("__name__", "app_error_ratio", "cluster", cluster, "revision", fmt.Sprint(revision)),
		time.Now().UnixMilli(), v)
	require.NoError(m.t, err)
	require.NoError(m.t, app.Commit())
}

// agent does what the clusters' agents do with the set's works: reports
// each generation applied and available, until the test ends.
func (f *fleet) agent(set string) {
	testutil.Run(f.t, func(ctx context.Context) error {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			var list fleetv1.ManifestWorkList
			if err := f.kube.List(ctx, &list, client.MatchingLabels{fleetv1.LabelManifestWorkSet: f.ns + "." + set}); err == nil {
				for i := range list.Items {
					w := &list.Items[i]
					if w.Status.ObservedGeneration == w.Generation {
						continue
					}
					w.Status.ObservedGeneration = w.Generation
					for _, typ := range []string{fleetv1.WorkApplied, fleetv1.WorkAvailable} {
						meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: "AsExpected", ObservedGeneration: w.Generation})
					}
					meta.SetStatusCondition(&w.Status.Conditions, metav1.Condition{Type: fleetv1.WorkProgressing, Status: metav1.ConditionFalse, Reason: "Completed", ObservedGeneration: w.Generation})
					_ = f.kube.Status().Update(ctx, w)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}, nil)
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string, match map[string]string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	require.NoError(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	next:
		for _, m := range f.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range match {
				if got[k] != v {
					continue next
				}
			}
			return value(m), true
		}
	}
	return 0, false
}

func value(m *dto.Metric) float64 {
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// TestRolloutGatesOnControlPlane rolls revisions group by group on a real
// control plane, gated by PromQL over a real TSDB: revision 2's error
// ratio fails the second group and Rollback takes it back to revision 1,
// with the query, value and threshold in status, Events and metrics;
// revision 3's gate finds no data and pauses; once the data is there a
// resume goes on, an approval lets the last group start, and revision 3
// becomes stable.
func TestRolloutGatesOnControlPlane(t *testing.T) {
	f := newFleet(t, "gates", "g1", "g2", "g3")
	tel := newTelemetry(t)
	reg := prometheus.NewRegistry()
	logger := testutil.Logger(t, slog.LevelInfo)
	controlplane.Start(t).StartManager(t, func(mgr ctrl.Manager) error {
		if err := placement.SetupWithConfig(mgr, placement.DefaultConfig(), nil, logger.With("component", "placement")); err != nil {
			return err
		}
		return workset.Setup(mgr, tel.q, reg, logger.With("component", "workset"))
	})
	ctx := context.Background()
	f.placement("all", 1) // three decision groups of one
	f.agent("app")
	gate := fleetv1.RolloutGate{Name: "errors", SuccessCondition: "value < 0.05", Interval: metav1.Duration{Duration: 500 * time.Millisecond}, Count: 2,
		Query: `max by (cluster) (app_error_ratio{cluster=~"{{ .Clusters }}",revision="{{ .Revision }}"})`}
	strategy := fleetv1.RolloutStrategy{Type: workset.RolloutProgressivePerGroup, Gates: []fleetv1.RolloutGate{gate}, FailureStrategy: workset.FailureRollback}
	for _, c := range f.clusters {
		tel.set(c, 1, 0.01)
	}
	require.NoError(t, f.kube.Create(ctx, &fleetv1.ManifestWorkSet{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "app"},
		Spec: fleetv1.ManifestWorkSetSpec{ManifestWorkTemplate: configMap("v1"),
			PlacementRefs: []fleetv1.PlacementRef{{Name: "all", RolloutStrategy: strategy}}},
	}))
	rollout := func(revision int64, phase fleetv1.RolloutPhase) func(*fleetv1.ManifestWorkSet) error {
		return func(s *fleetv1.ManifestWorkSet) error {
			ro := s.Status.Rollout
			if ro == nil || ro.Revision != revision || ro.Phase != phase {
				return fmt.Errorf("rollout %+v, want revision %d %s", ro, revision, phase)
			}
			return nil
		}
	}
	f.waitSet("app", 30*time.Second, rollout(1, fleetv1.RolloutSucceeded))
	if s := f.set("app"); s.Status.StableRevision != 1 || len(s.Status.Rollout.Stages) != 3 {
		t.Fatalf("stable %d, %d stages; want 1 and 3", s.Status.StableRevision, len(s.Status.Rollout.Stages))
	}

	// Revision 2: fine on g1, 30 % errors on g2.
	tel.set("g1", 2, 0.01)
	tel.set("g2", 2, 0.3)
	f.edit("app", func(s *fleetv1.ManifestWorkSet) { s.Spec.ManifestWorkTemplate = configMap("v2") })
	f.waitSet("app", 30*time.Second, rollout(2, fleetv1.RolloutRolledBack))
	if got := f.workRevisions("app"); fmt.Sprint(got) != "map[g1:2 g2:1 g3:1]" {
		t.Errorf("work revisions %v: want g1 on 2, g2 rolled back to 1 (before the status says so), g3 never updated", got)
	}
	s := f.set("app")
	var g2 *fleetv1.ClusterRolloutStatus
	for i := range s.Status.Rollout.Clusters {
		if c := &s.Status.Rollout.Clusters[i]; c.Cluster == "g2" {
			g2 = c
		}
	}
	require.NotNil(t, g2)
	d := g2.DecidedBy
	if g2.Verdict != fleetv1.VerdictRolledBack || d == nil || d.Signal != fleetv1.SignalGate || d.Value != "0.3" || d.Threshold != "not value < 0.05" ||
		d.Query != `max by (cluster) (app_error_ratio{cluster=~"g2",revision="2"})` {
		t.Errorf("g2: %s decided by %+v; want rolled back on gate errors, 0.3 against value < 0.05, with the query filled in", g2.Verdict, d)
	}
	c := meta.FindStatusCondition(s.Status.Conditions, workset.ConditionProgressing)
	if c == nil || c.Reason != "RolledBack" || !strings.Contains(c.Message, "g2: gate errors value 0.3") {
		t.Errorf("Progressing %+v", c)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		var evs eventsv1.EventList
		if err := f.kube.List(ctx, &evs, client.InNamespace(f.ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "RolledBack" && e.Regarding.Name == "app" && strings.Contains(e.Note, `app_error_ratio{cluster=~"g2",revision="2"}`) {
				return nil
			}
		}
		return fmt.Errorf("no RolledBack Event with the query among %d events", len(evs.Items))
	})
	// The gauges follow the status write.
	testutil.Eventually(t, 5*time.Second, func() error {
		if v, ok := gaugeValue(t, reg, "fleetpulse_hub_rollout_phase", map[string]string{"namespace": f.ns, "name": "app", "phase": "RolledBack"}); !ok || v != 1 {
			return fmt.Errorf("fleetpulse_hub_rollout_phase{phase=RolledBack} = %v (%v), want 1", v, ok)
		}
		return nil
	})
	if v, _ := gaugeValue(t, reg, "fleetpulse_hub_rollout_gate_measurements_total", map[string]string{"name": "app", "gate": "errors", "outcome": "failed"}); v < 1 {
		t.Errorf("failed measurements counted %v, want at least 1", v)
	}

	// Revision 3 has no data yet: the first group pauses, inconclusive.
	f.edit("app", func(s *fleetv1.ManifestWorkSet) {
		s.Spec.ManifestWorkTemplate = configMap("v3")
		s.Spec.PlacementRefs[0].RolloutStrategy.ApprovalBeforeStages = []int32{2}
	})
	f.waitSet("app", 30*time.Second, rollout(3, fleetv1.RolloutPaused))
	if s := f.set("app"); s.Status.Rollout.Reason != workset.ReasonInconclusive || s.Status.Rollout.PreviousRevision != 1 {
		t.Fatalf("rollout %s (%s), previous %d; want paused inconclusive after revision 1", s.Status.Rollout.Phase, s.Status.Rollout.Reason, s.Status.Rollout.PreviousRevision)
	}
	for _, c := range f.clusters {
		tel.set(c, 3, 0.02)
	}
	f.edit("app", func(s *fleetv1.ManifestWorkSet) {
		s.Annotations = map[string]string{fleetv1.AnnotationResume: time.Now().Format(time.RFC3339Nano)}
	})
	f.waitSet("app", 30*time.Second, rollout(3, fleetv1.RolloutWaitingApproval))
	if got := f.workRevisions("app"); fmt.Sprint(got) != "map[g1:3 g2:3 g3:1]" {
		t.Errorf("work revisions %v while waiting for the approval; want g3 still on 1", got)
	}
	require.NoError(t, f.kube.Create(ctx, &fleetv1.RolloutApproval{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "app-3-2"},
		Spec:       fleetv1.RolloutApprovalSpec{ManifestWorkSet: "app", Revision: 3, Stage: 2, Approver: "alice"},
	}))
	f.waitSet("app", 30*time.Second, rollout(3, fleetv1.RolloutSucceeded))
	s = f.set("app")
	if s.Status.StableRevision != 3 || s.Status.Rollout.Stages[2].ApprovedBy != "alice (RolloutApproval app-3-2)" {
		t.Errorf("stable %d, last stage approved by %q", s.Status.StableRevision, s.Status.Rollout.Stages[2].ApprovedBy)
	}
	if fmt.Sprint(s.Status.Revisions) != "[{3 3 3}]" {
		t.Errorf("per revision %v, want all three on 3", s.Status.Revisions)
	}
}
