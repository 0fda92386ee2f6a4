package registration

import (
	"context"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// clusterInventory is what a cluster's telemetry says about it: the agent
// ships its inventory as series, and the hub reads them back rather than
// having the agent send it twice.
type clusterInventory struct {
	Version, Platform      string
	NodesTotal, NodesReady int32
	Capacity, Allocatable  corev1.ResourceList
}

func (c clusterInventory) apply(st *fleetv1.ManagedClusterStatus) {
	st.Version.Kubernetes, st.Platform = c.Version, c.Platform
	st.Nodes = fleetv1.NodeCounts{Total: c.NodesTotal, Ready: c.NodesReady}
	st.Capacity, st.Allocatable = c.Capacity, c.Allocatable
}

type inventories struct {
	mu   sync.Mutex
	snap map[string]clusterInventory
}

func (i *inventories) get(name string) (clusterInventory, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	c, ok := i.snap[name]
	return c, ok
}

// resources maps the agent's cluster-wide metrics to resource names.
var resources = []struct {
	name       corev1.ResourceName
	capacity   string
	alloc      string
	quantityOf func(float64) resource.Quantity
}{
	{corev1.ResourceCPU, "k8s_cluster_capacity_cpu", "k8s_cluster_allocatable_cpu",
		func(v float64) resource.Quantity {
			return *resource.NewMilliQuantity(int64(v*1000), resource.DecimalSI)
		}},
	{corev1.ResourceMemory, "k8s_cluster_capacity_memory_bytes", "k8s_cluster_allocatable_memory_bytes",
		func(v float64) resource.Quantity { return *resource.NewQuantity(int64(v), resource.BinarySI) }},
	{corev1.ResourcePods, "k8s_cluster_capacity_pods", "k8s_cluster_allocatable_pods",
		func(v float64) resource.Quantity { return *resource.NewQuantity(int64(v), resource.DecimalSI) }},
}

// pollInventory reads every cluster's inventory from the store every
// interval, with a handful of queries for the whole fleet, and wakes the
// controller for the clusters whose inventory changed.
func (s *Service) pollInventory(ctx context.Context) {
	t := time.NewTicker(s.cfg.InventoryInterval)
	defer t.Stop()
	for {
		snap, err := s.readInventory(ctx, s.now())
		if err != nil && strings.Contains(err.Error(), "No StoreAPIs available") {
			snap, err = map[string]clusterInventory{}, nil // no cluster has written yet
		}
		if err != nil {
			s.logger.Warn("read cluster inventory from telemetry", "err", err)
		} else {
			s.inventory.mu.Lock()
			old := s.inventory.snap
			s.inventory.snap = snap
			s.inventory.mu.Unlock()
			for name, inv := range snap {
				if prev, ok := old[name]; !ok || !equality.Semantic.DeepEqual(prev, inv) {
					s.tracker.poke(name)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Service) readInventory(ctx context.Context, now time.Time) (map[string]clusterInventory, error) {
	snap := map[string]clusterInventory{}
	at := func(name string) clusterInventory {
		c, ok := snap[name]
		if !ok {
			c = clusterInventory{Capacity: corev1.ResourceList{}, Allocatable: corev1.ResourceList{}}
		}
		return c
	}
	info, err := s.query(ctx, `max by (cluster, k8s_cluster_version, k8s_cluster_platform) (k8s_cluster_info)`, now)
	if err != nil {
		return nil, err
	}
	for _, smp := range info {
		c := at(smp.Metric.Get("cluster"))
		c.Version, c.Platform = smp.Metric.Get("k8s_cluster_version"), smp.Metric.Get("k8s_cluster_platform")
		snap[smp.Metric.Get("cluster")] = c
	}
	nodes, err := s.query(ctx, `sum by (cluster, k8s_node_condition_ready) (k8s_cluster_node_count)`, now)
	if err != nil {
		return nil, err
	}
	for _, smp := range nodes {
		c := at(smp.Metric.Get("cluster"))
		c.NodesTotal += int32(smp.F)
		if smp.Metric.Get("k8s_node_condition_ready") == "true" {
			c.NodesReady += int32(smp.F)
		}
		snap[smp.Metric.Get("cluster")] = c
	}
	for _, r := range resources {
		for metric, list := range map[string]func(*clusterInventory) corev1.ResourceList{
			r.capacity: func(c *clusterInventory) corev1.ResourceList { return c.Capacity },
			r.alloc:    func(c *clusterInventory) corev1.ResourceList { return c.Allocatable },
		} {
			vec, err := s.query(ctx, `sum by (cluster) (`+metric+`)`, now)
			if err != nil {
				return nil, err
			}
			for _, smp := range vec {
				c := at(smp.Metric.Get("cluster"))
				list(&c)[r.name] = r.quantityOf(smp.F)
				snap[smp.Metric.Get("cluster")] = c
			}
		}
	}
	return snap, nil
}
