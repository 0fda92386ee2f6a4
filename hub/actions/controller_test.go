package actions

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

type fixedAlerts []alerting.Alert

func (a fixedAlerts) Active(context.Context) ([]alerting.Alert, error) { return a, nil }
func (a fixedAlerts) Evaluated() <-chan struct{}                       { return nil }

// TestReconcileTaintTakeover covers the reconciles that the integration
// test does not: a taint of a gone AlertTaint (whose finalizer was removed
// by hand) is removed by another rule's reconcile, and two rules of one key
// share the taint until the last lets it go.
func TestReconcileTaintTakeover(t *testing.T) {
	ctx := context.Background()
	scheme := runtime.NewScheme()
	_ = fleetv1.AddToScheme(scheme)
	gone, shared := fleetv1.Taint{Key: "example.com/gone", Effect: fleetv1.TaintNoSelect}, fleetv1.Taint{Key: "example.com/shared", Effect: fleetv1.TaintNoSelect}
	c1 := &fleetv1.ManagedCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "c1", Annotations: setOwners(nil, owners{"deleted-rule": {idOf(gone)}})},
		Spec:       fleetv1.ManagedClusterSpec{Accepted: true, Taints: []fleetv1.Taint{gone}},
	}
	rule := func(name, alert string) *fleetv1.AlertTaint {
		return &fleetv1.AlertTaint{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: fleetv1.AlertTaintSpec{AlertName: alert, Taint: shared}}
	}
	kube := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&fleetv1.AlertTaint{}).
		WithObjects(c1, &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "c2"}, Spec: fleetv1.ManagedClusterSpec{Accepted: true}},
			rule("a", "A"), rule("b", "B")).Build()
	firing := func(names ...string) fixedAlerts {
		var out fixedAlerts
		for _, n := range names {
			out = append(out, alerting.Alert{Name: n, Firing: true, Labels: map[string]string{"cluster": "c1"}})
		}
		return out
	}
	r := &alertTaints{c: kube, api: kube, events: events.NewFakeRecorder(100), logger: slog.New(slog.DiscardHandler), now: time.Now}
	reconcile := func(name string, active fixedAlerts) {
		t.Helper()
		r.alerts = active
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKey{Name: name}}); err != nil {
			t.Fatalf("reconcile %s: %v", name, err)
		}
	}
	taints := func(want ...string) {
		t.Helper()
		mc := &fleetv1.ManagedCluster{}
		if err := kube.Get(ctx, client.ObjectKey{Name: "c1"}, mc); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tn := range mc.Spec.Taints {
			got = append(got, tn.Key)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("c1 taints %v (owners %s), want %v", got, mc.Annotations[AnnotationOwners], want)
		}
	}

	reconcile("a", firing("A", "B"))
	taints(shared.Key) // the gone rule's taint removed, a's added
	reconcile("b", firing("A", "B"))
	taints(shared.Key)
	reconcile("a", firing("B")) // a's alert resolved: a lets go after UntaintAfter (0 here)
	reconcile("a", firing("B"))
	taints(shared.Key) // b still holds it
	reconcile("b", nil)
	reconcile("b", nil)
	taints()
}
