package actions_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/actions"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// alerts is an AlertSource whose active alerts the test sets; it ticks
// "evaluated" every 100 ms, as the hub's rules do after each evaluation.
type alerts struct {
	mu     sync.Mutex
	active []alerting.Alert
	tick   chan struct{}
}

func (a *alerts) Active(context.Context) ([]alerting.Alert, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.active), nil
}

func (a *alerts) Evaluated() <-chan struct{} { return a.tick }

func (a *alerts) set(active ...alerting.Alert) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active = active
}

// TestAlertTaintOwnsItsTaints runs the AlertTaint controller against a real
// control plane: a firing alert taints its cluster; changing the rule's
// taint key moves the taint to the new key (the old one does not stay
// behind); deleting the rule removes its taint before the AlertTaint goes.
// A taint someone else set on the same cluster is never touched.
func TestAlertTaintOwnsItsTaints(t *testing.T) {
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
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		return actions.Setup(mgr, src, testutil.Logger(t, slog.LevelInfo))
	})
	kube := cp.Client
	manual := fleetv1.Taint{Key: "example.com/maintenance", Effect: fleetv1.TaintNoSelect, TimeAdded: metav1.Unix(1_800_000_000, 0)}
	for _, name := range []string{"c1", "c2", "c3"} {
		mc := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: fleetv1.ManagedClusterSpec{Accepted: true}}
		if name == "c1" {
			mc.Spec.Taints = []fleetv1.Taint{manual}
		}
		require.NoError(t, kube.Create(ctx, mc))
	}

	const oldKey, newKey = "fleetpulse.io/nodes-not-ready", "fleetpulse.io/degraded"
	rule := &fleetv1.AlertTaint{
		ObjectMeta: metav1.ObjectMeta{Name: "nodes"},
		Spec: fleetv1.AlertTaintSpec{AlertName: "NodesNotReady", Taint: fleetv1.Taint{Key: oldKey, Effect: fleetv1.TaintNoSelect},
			UntaintAfter: metav1.Duration{Duration: time.Minute}},
	}
	src.set(alerting.Alert{Name: "NodesNotReady", Firing: true, Value: 2, Labels: map[string]string{"alertname": "NodesNotReady", "cluster": "c1"}})
	require.NoError(t, kube.Create(ctx, rule))
	waitTaints(t, kube, "c1", manual.Key, oldKey)
	waitTaints(t, kube, "c2")
	require.NoError(t, kube.Get(ctx, client.ObjectKeyFromObject(rule), rule))
	if !slices.Contains(rule.Finalizers, actions.Finalizer) {
		t.Errorf("AlertTaint finalizers %v, want %s: without it a deleted rule's taints would stay", rule.Finalizers, actions.Finalizer)
	}

	// The key changes while the alert fires: the taint moves to the new key.
	update(t, kube, rule, func(r *fleetv1.AlertTaint) { r.Spec.Taint.Key = newKey })
	waitTaints(t, kube, "c1", manual.Key, newKey)

	// Deleted while the alert still fires: the taint goes, then the rule.
	require.NoError(t, kube.Delete(ctx, rule))
	testutil.Eventually(t, 10*time.Second, func() error {
		err := kube.Get(ctx, client.ObjectKeyFromObject(rule), &fleetv1.AlertTaint{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("AlertTaint still there (%v)", err)
	})
	waitTaints(t, kube, "c1", manual.Key)
	mc := &fleetv1.ManagedCluster{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Name: "c1"}, mc))
	if v, ok := mc.Annotations[actions.AnnotationOwners]; ok {
		t.Errorf("c1 still records taint owners %s after the last one went", v)
	}
	if mc.Spec.Taints[0].TimeAdded.Unix() != manual.TimeAdded.Unix() {
		t.Errorf("c1's own taint was rewritten: %+v", mc.Spec.Taints[0])
	}
}

// waitTaints waits until the cluster's taints have exactly the keys given.
func waitTaints(t *testing.T, kube client.Client, cluster string, keys ...string) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := kube.Get(context.Background(), client.ObjectKey{Name: cluster}, mc); err != nil {
			return err
		}
		var got []string
		for _, t := range mc.Spec.Taints {
			got = append(got, t.Key)
		}
		if !slices.Equal(got, keys) {
			return fmt.Errorf("%s has taints %v, want %v", cluster, got, keys)
		}
		return nil
	})
}

func update(t *testing.T, kube client.Client, rule *fleetv1.AlertTaint, change func(*fleetv1.AlertTaint)) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if err := kube.Get(context.Background(), client.ObjectKeyFromObject(rule), rule); err != nil {
			return err
		}
		change(rule)
		return kube.Update(context.Background(), rule)
	})
}
