package actions_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/actions"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/policy"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// TestAlertRemediationEnforcesAPolicy runs AlertRemediation with the policy
// propagator on a real control plane: the alert firing for one cluster
// raises that cluster's replica of the policy to enforce (and no other
// cluster's), with an Event naming the alert and its value; a dry-run twin
// only records what it would do; once the alert has stayed resolved for
// undoAfter the replica goes back to inform.
func TestAlertRemediationEnforcesAPolicy(t *testing.T) {
	t.Parallel()
	cp := controlplane.Start(t)
	ctx := context.Background()
	src := &alerts{tick: make(chan struct{})}
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		ticker := time.NewTicker(100 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ticker.C:
				select {
				case src.tick <- struct{}{}:
				case <-stop:
					return
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-ticked })
	logger := testutil.Logger(t, slog.LevelInfo)
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		if err := placement.SetupWithConfig(mgr, placement.DefaultConfig(), nil, logger.With("component", "placement")); err != nil {
			return err
		}
		if err := policy.Setup(mgr, logger.With("component", "policy")); err != nil {
			return err
		}
		return actions.SetupAlertRemediation(mgr, src, logger.With("component", "alertremediation"))
	})
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "remedy"}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "remedy"}}))
	for _, c := range []string{"rem-1", "rem-2"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelClusterSet: "remedy"}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c}}))
	}
	require.NoError(t, kube.Create(ctx, &fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "remedy", Name: "all"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{"remedy"}}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "remedy", Name: "quota"},
		Spec: fleetv1.PolicySpec{ObjectTemplates: []fleetv1.ObjectTemplate{{ComplianceType: fleetv1.MustHave, ObjectDefinition: runtime.RawExtension{Raw: []byte(
			`{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"default","namespace":"default"},"spec":{"hard":{"pods":"100"}}}`)}}}},
	}))
	require.NoError(t, kube.Create(ctx, &fleetv1.PlacementBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "remedy", Name: "quota"}, PlacementRef: fleetv1.BindingPlacementRef{Name: "all"},
		Subjects: []fleetv1.PolicySubject{{Kind: "Policy", Name: "quota"}},
	}))
	waitRemediation(t, kube, map[string]fleetv1.RemediationAction{"rem-1": "inform", "rem-2": "inform"})

	undo := metav1.Duration{Duration: time.Second}
	for _, r := range []*fleetv1.AlertRemediation{
		{ObjectMeta: metav1.ObjectMeta{Name: "quota-missing"}, Spec: fleetv1.AlertRemediationSpec{AlertName: "QuotaMissing",
			MatchLabels: map[string]string{"severity": "critical"}, PolicyRef: fleetv1.PolicyRef{Namespace: "remedy", Name: "quota"}, UndoAfter: &undo}},
		{ObjectMeta: metav1.ObjectMeta{Name: "quota-missing-dry"}, Spec: fleetv1.AlertRemediationSpec{AlertName: "QuotaMissing",
			MatchLabels: map[string]string{"severity": "warning"}, PolicyRef: fleetv1.PolicyRef{Namespace: "remedy", Name: "quota"}, DryRun: true}},
	} {
		require.NoError(t, kube.Create(ctx, r))
	}
	src.set(
		alerting.Alert{Name: "QuotaMissing", Firing: true, Value: 3, Labels: map[string]string{"alertname": "QuotaMissing", "cluster": "rem-2", "severity": "critical"}},
		alerting.Alert{Name: "QuotaMissing", Firing: true, Value: 1, Labels: map[string]string{"alertname": "QuotaMissing", "cluster": "rem-1", "severity": "warning"}},
	)
	waitRemediation(t, kube, map[string]fleetv1.RemediationAction{"rem-1": "inform", "rem-2": "enforce"})
	testutil.Eventually(t, 10*time.Second, func() error {
		return hasEvent(kube, "quota-missing", "Enforcing", "enforcing remedy/quota on rem-2: alert QuotaMissing")
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		return hasEvent(kube, "quota-missing-dry", "WouldEnforce", "dry run: would enforce remedy/quota on rem-1")
	})
	dry := &fleetv1.AlertRemediation{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Name: "quota-missing-dry"}, dry))
	require.Equal(t, int32(0), dry.Status.EnforcingClusters)

	// Resolved for undoAfter: rem-2 goes back to inform.
	src.set()
	waitRemediation(t, kube, map[string]fleetv1.RemediationAction{"rem-1": "inform", "rem-2": "inform"})
	testutil.Eventually(t, 10*time.Second, func() error {
		return hasEvent(kube, "quota-missing", "Undone", "remedy/quota back to its own remediation on rem-2")
	})
}

func waitRemediation(t *testing.T, kube client.Client, want map[string]fleetv1.RemediationAction) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, func() error {
		var list fleetv1.PolicyList
		if err := kube.List(context.Background(), &list, client.MatchingLabels{fleetv1.LabelRootPolicy: "remedy.quota"}); err != nil {
			return err
		}
		got := map[string]fleetv1.RemediationAction{}
		for _, p := range list.Items {
			got[p.Namespace] = p.Spec.RemediationAction
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("replicas %v, want %v", got, want)
		}
		return nil
	})
}

func hasEvent(kube client.Client, rule, reason, text string) error {
	var list eventsv1.EventList
	if err := kube.List(context.Background(), &list); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Name != rule {
			continue
		}
		seen = append(seen, e.Reason+": "+e.Note)
		if e.Reason == reason && strings.Contains(e.Note, text) {
			return nil
		}
	}
	return fmt.Errorf("no %s event containing %q for %s (seen %q)", reason, text, rule, seen)
}
