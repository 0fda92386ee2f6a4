package placement

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestCeilSecond(t *testing.T) {
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[time.Time]time.Time{
		base:                                     base,
		base.Add(time.Nanosecond):                base.Add(time.Second),
		base.Add(999 * time.Millisecond):         base.Add(time.Second),
		base.Add(time.Second + time.Microsecond): base.Add(2 * time.Second),
	} {
		if got := ceilSecond(in); !got.Equal(want) {
			t.Errorf("ceilSecond(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestClusterChanged(t *testing.T) {
	old := mkCluster("a")
	for _, tc := range []struct {
		name   string
		change func(*fleetv1.ManagedCluster)
		want   bool
	}{
		{name: "heartbeat time", change: func(mc *fleetv1.ManagedCluster) { mc.Status.LastHeartbeatTime = &metav1.Time{Time: now} }},
		{name: "node counts", change: func(mc *fleetv1.ManagedCluster) { mc.Status.Nodes.Ready = 3 }},
		{name: "taint", change: func(mc *fleetv1.ManagedCluster) { taint("k", fleetv1.TaintNoSelect, 0)(mc) }, want: true},
		{name: "label", change: func(mc *fleetv1.ManagedCluster) { mc.Labels["env"] = "dev" }, want: true},
		{name: "acceptance", change: func(mc *fleetv1.ManagedCluster) { mc.Spec.Accepted = false }, want: true},
		{name: "claims", change: func(mc *fleetv1.ManagedCluster) {
			mc.Status.ClusterClaims = []fleetv1.ClusterClaim{{Name: "region", Value: "eu"}}
		}, want: true},
		{name: "allocatable", change: func(mc *fleetv1.ManagedCluster) {
			mc.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("4")}
		}, want: true},
		{name: "deletion", change: func(mc *fleetv1.ManagedCluster) { mc.DeletionTimestamp = &metav1.Time{Time: now} }, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			updated := old.DeepCopy()
			tc.change(updated)
			if got := clusterChanged.Update(event.UpdateEvent{ObjectOld: &old, ObjectNew: updated}); got != tc.want {
				t.Errorf("clusterChanged = %v, want %v", got, tc.want)
			}
		})
	}
}
