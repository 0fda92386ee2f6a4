package testbed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
)

// FleetOptions describe a local fleet: one hub control plane and managed clusters.
type FleetOptions struct {
	// Dir holds one folder per cluster. Required: a fleet's state is kept
	// where its user can find it.
	Dir string
	// Clusters is the number of managed clusters, named cluster-1 … cluster-N.
	Clusters int
	// Nodes is the number of kwok nodes in each managed cluster.
	Nodes int
	// Logger reports progress; nil means slog.Default().
	Logger *slog.Logger
}

// Fleet is a running local fleet.
type Fleet struct {
	Hub      *Cluster   // the hub's control plane: etcd, apiserver, controller manager
	Clusters []*Cluster // the managed clusters
}

// HubName is the name of the hub's control-plane cluster in a fleet.
const HubName = "hub"

// StartFleet starts the hub control plane and the managed clusters in
// parallel. On error nothing is left running.
func StartFleet(ctx context.Context, bins *Binaries, opts FleetOptions) (*Fleet, error) {
	if opts.Dir == "" {
		return nil, errors.New("start fleet: a state directory is required")
	}
	if opts.Clusters < 0 || opts.Nodes < 0 {
		return nil, fmt.Errorf("start fleet: clusters (%d) and nodes (%d) must not be negative", opts.Clusters, opts.Nodes)
	}
	all := []ClusterOptions{{Name: HubName, ControlPlaneOnly: true}}
	for i := 1; i <= opts.Clusters; i++ {
		all = append(all, ClusterOptions{Name: fmt.Sprintf("cluster-%d", i), Nodes: opts.Nodes})
	}
	started := make([]*Cluster, len(all))
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, o := range all {
		o.Dir = filepath.Join(opts.Dir, o.Name)
		o.Logger = opts.Logger
		wg.Add(1)
		go func() {
			defer wg.Done()
			started[i], errs[i] = StartCluster(ctx, bins, o)
		}()
	}
	wg.Wait()
	f := &Fleet{Hub: started[0], Clusters: started[1:]}
	if err := errors.Join(errs...); err != nil {
		f.Stop()
		return nil, fmt.Errorf("start fleet: %w", err)
	}
	return f, nil
}

// All returns the hub followed by the managed clusters.
func (f *Fleet) All() []*Cluster {
	return append([]*Cluster{f.Hub}, f.Clusters...)
}

// Stop stops every cluster of the fleet in parallel.
func (f *Fleet) Stop() {
	var wg sync.WaitGroup
	for _, c := range f.All() {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop() }()
	}
	wg.Wait()
}
