package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	testcp "github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { testcp.Main(m) }

func TestConfigValidate(t *testing.T) {
	if err := controlplane.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	err := controlplane.Config{ClientQPS: 0, ClientBurst: 10}.Validate()
	if err == nil || !strings.Contains(err.Error(), "qps (0) and burst (10) must be positive") {
		t.Errorf("qps 0: %v, want the qps named", err)
	}
}

// TestManagerOnTheControlPlane: installing the API again over an installed
// one succeeds (the hub installs at every start), and the manager's caches
// hold what the byObject narrowing lets through: of namespaces, only the
// clusters' (labelled), while other types are cached whole.
func TestManagerOnTheControlPlane(t *testing.T) {
	shared := testcp.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := controlplane.InstallAt(ctx, shared.RESTConfig, testcp.Namespace); err != nil {
		t.Fatalf("install over an installed API: %v", err)
	}
	clusterNamespaces := labels.SelectorFromSet(labels.Set{fleetv1.LabelCluster: "cp-east"})
	cfg := controlplane.DefaultConfig()
	cfg.LeaderElect = false
	cp, err := controlplane.New(shared.RESTConfig, cfg, testcp.Namespace, testutil.Logger(t, slog.LevelWarn), nil,
		map[client.Object]cache.ByObject{&corev1.Namespace{}: {Label: clusterNamespaces}})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, cp.Run, nil)
	if !cp.WaitReady(ctx) {
		t.Fatal("the manager's caches did not sync")
	}
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: "cp-east", Labels: map[string]string{fleetv1.LabelCluster: "cp-east"}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "cp-apps"}},
	} {
		if err := shared.Client.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := shared.Client.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "cp-prod"}}); err != nil {
		t.Fatal(err)
	}
	cached := cp.Manager().GetClient()
	testutil.Eventually(t, 30*time.Second, func() error {
		if err := cached.Get(ctx, client.ObjectKey{Name: "cp-east"}, &corev1.Namespace{}); err != nil {
			return fmt.Errorf("the cluster's namespace: %w", err)
		}
		return cached.Get(ctx, client.ObjectKey{Name: "cp-prod"}, &fleetv1.ClusterSet{})
	})
	var all corev1.NamespaceList
	if err := cached.List(ctx, &all); err != nil {
		t.Fatal(err)
	}
	for _, ns := range all.Items {
		if ns.Labels[fleetv1.LabelCluster] == "" {
			t.Errorf("the cache holds namespace %s, which no cluster owns", ns.Name)
		}
	}
}
