package controlplane

import (
	"context"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestMain(m *testing.M) { Main(m) }

// TestControlPlaneServesTheAPI checks that the shared control plane serves
// the fleetpulse types and that a manager's cache sees what a client wrote.
func TestControlPlaneServesTheAPI(t *testing.T) {
	cp := Start(t)
	if again := Start(t); again != cp {
		t.Fatal("a second Start started another control plane")
	}
	ctx := context.Background()
	mc := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "cp-test"}}
	if err := cp.Client.Create(ctx, mc); err != nil {
		t.Fatalf("create a ManagedCluster: %v", err)
	}
	mgr := cp.StartManager(t, func(ctrl.Manager) error { return nil })
	got := &fleetv1.ManagedCluster{}
	if err := mgr.GetClient().Get(ctx, client.ObjectKeyFromObject(mc), got); err != nil {
		t.Fatalf("the manager's cache lacks the ManagedCluster: %v", err)
	}
}
