package hub

import (
	"context"
	"fmt"
	"regexp"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	testcp "github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestControllersLeaderElected runs two hubs on one control plane: both
// serve, one runs the controllers, and when it stops the other takes them
// over within one lease duration.
func TestControllersLeaderElected(t *testing.T) {
	cp := testcp.Start(t)
	ca := testbed.NewCA(t, "leader-agents")
	config := func() Config {
		cfg := DefaultConfig()
		cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", "127.0.0.1:0"
		cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("hub")
		cfg.AgentTLS.ClientCAFile, cfg.AgentTLS.ClientCAKeyFile = ca.CertFile, ca.KeyFile
		cfg.ControlPlaneKubeconfig = cp.KubeconfigPath
		cfg.Registration.Namespace = testcp.Namespace
		cfg.ControlPlane.LeaseDuration, cfg.ControlPlane.RenewDeadline, cfg.ControlPlane.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
		cfg.Store.Dir = t.TempDir()
		cfg.NoShippedRules = true
		return cfg
	}
	first, stopFirst := runHub(t, config())
	testutil.Eventually(t, 30*time.Second, leads(first, true))
	second, _ := runHub(t, config())

	// Both serve; the second stays a follower while the first renews.
	if !second.Ready() {
		t.Fatal("the follower is not ready: its gateways must serve")
	}
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if second.LeadsControllers() {
			t.Fatal("two hubs run the controllers at once")
		}
	}
	for h, want := range map[*Hub]string{first: "fleetpulse_hub_controllers_leader 1", second: "fleetpulse_hub_controllers_leader 0"} {
		if got := leaderGauge.FindString(scrape(t, h)); got != want {
			t.Errorf("/metrics says %q, want %q", got, want)
		}
	}
	holder := func() (string, error) {
		var l coordinationv1.Lease
		if err := cp.Client.Get(context.Background(), client.ObjectKey{Namespace: testcp.Namespace, Name: controlplane.LeaseName}, &l); err != nil {
			return "", err
		}
		if l.Spec.HolderIdentity == nil {
			return "", nil
		}
		return *l.Spec.HolderIdentity, nil
	}
	held, err := holder()
	if err != nil || held == "" {
		t.Fatalf("the controllers' Lease: holder %q, %v", held, err)
	}

	stopped := time.Now()
	stopFirst()
	testutil.Eventually(t, config().ControlPlane.LeaseDuration, leads(second, true))
	t.Logf("the follower took the controllers over %s after the leader stopped", time.Since(stopped))
	if now, err := holder(); err != nil || now == held || now == "" {
		t.Errorf("after the takeover the Lease is held by %q (%v), want a new holder than %q", now, err, held)
	}
}

// leaderGauge is the leader gauge's sample line on /metrics.
var leaderGauge = regexp.MustCompile(`(?m)^fleetpulse_hub_controllers_leader \S+`)

func leads(h *Hub, want bool) func() error {
	return func() error {
		if h.LeadsControllers() != want {
			return fmt.Errorf("leads the controllers: %t, want %t", !want, want)
		}
		return nil
	}
}
