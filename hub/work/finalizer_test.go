package work

import (
	"context"
	"log/slog"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestFinalizerController(t *testing.T) {
	now := metav1.NewTime(time.Now())
	cluster := func(deleting bool) *fleetv1.ManagedCluster {
		mc := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "east"}}
		if deleting {
			mc.DeletionTimestamp, mc.Finalizers = &now, []string{"keep"}
		}
		return mc
	}
	deleting := func(mw *fleetv1.ManifestWork) *fleetv1.ManifestWork {
		mw.DeletionTimestamp = &now
		mw.Finalizers = append(mw.Finalizers, "other")
		return mw
	}
	for _, tc := range []struct {
		name    string
		cluster *fleetv1.ManagedCluster
		work    *fleetv1.ManifestWork
		want    bool // the finalizer after reconciling
	}{
		{"registered cluster: added", cluster(false), mwork("east", "a", false), true},
		{"no such cluster: not added", nil, mwork("east", "a", false), false},
		{"cluster being deleted: not added", cluster(true), mwork("east", "a", false), false},
		{"deleted work of a registered cluster: kept for the agent", cluster(false), deleting(mwork("east", "a", true)), true},
		{"deleted work of a deregistered cluster: released", cluster(true), deleting(mwork("east", "a", true)), false},
		{"deleted work of a cluster that is gone: released", nil, deleting(mwork("east", "a", true)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := runtime.NewScheme()
			_ = fleetv1.AddToScheme(s)
			objs := []client.Object{tc.work}
			if tc.cluster != nil {
				objs = append(objs, tc.cluster)
			}
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
			f := &finalizer{c: c, logger: slog.New(slog.DiscardHandler)}
			if _, err := f.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(tc.work)}); err != nil {
				t.Fatal(err)
			}
			got := &fleetv1.ManifestWork{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(tc.work), got); err != nil {
				t.Fatal(err)
			}
			if has := controllerutil.ContainsFinalizer(got, Finalizer); has != tc.want {
				t.Errorf("finalizer present %v, want %v", has, tc.want)
			}
		})
	}
}
