package controlplane_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestReplicasInstallTheAPIAtOnce: hub replicas started together on an
// empty control plane each install the API at the same time, and every
// one of them succeeds, as each must to run its controllers.
func TestReplicasInstallTheAPIAtOnce(t *testing.T) {
	t.Parallel()
	cp := testbed.StartClusters(t, "install", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const replicas = 5
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { errs[i] = controlplane.InstallAt(ctx, cp.RESTConfig, "fleetpulse-system") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("replica %d's install: %v", i, err)
		}
	}
}
