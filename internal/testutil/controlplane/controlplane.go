// Package controlplane gives a test package one real hub control plane — the
// test bed's kube-apiserver and etcd with the fleetpulse CRDs installed —
// and runs controller-runtime managers on it.
//
// The control plane starts on first use and is shared by the package's
// tests, which therefore name their objects apart, and whose controllers see
// every test's objects unless InNamespaces confines them; the package's
// TestMain calls Main to stop it when the tests are done:
//
//	func TestMain(m *testing.M) { controlplane.Main(m) }
//
// It does not import the hub, so that every hub package's own tests can use
// it.
package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/fleetpulse/fleetpulse/api"
	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// Namespace is created on the control plane, as the hub creates its own.
const Namespace = "fleetpulse-system"

// ControlPlane is a running hub control plane.
type ControlPlane struct {
	*testbed.Cluster
	// Client reads and writes the apiserver directly (no cache), with Scheme.
	Client client.Client
}

var shared struct {
	sync.Mutex
	main bool
	cp   *ControlPlane
	err  error
}

// Main runs the package's tests, then stops the control plane if a test
// started it, and exits with the tests' code. When a test failed, the last
// lines of the control plane's logs go to stderr.
func Main(m *testing.M) {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if cp := shared.cp; cp != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "control plane %s (last lines):\n%s\n", cp.Name, cp.LogTails(20))
		}
		cp.Stop()
	}
	shared.Unlock()
	os.Exit(code)
}

// Start returns the package's control plane, starting it on first use; a
// failed start fails every test that asks for it.
func Start(t testing.TB) *ControlPlane {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("controlplane.Start needs the package's TestMain to call controlplane.Main")
	}
	if shared.cp == nil && shared.err == nil {
		shared.cp, shared.err = start()
	}
	if shared.err != nil {
		t.Fatalf("start control plane: %v", shared.err)
	}
	return shared.cp
}

func start() (*ControlPlane, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bins, err := testbed.EnsureBinaries(ctx, testbed.BuildOptions{})
	if err != nil {
		return nil, fmt.Errorf("test-bed binaries: %w", err)
	}
	c, err := testbed.StartCluster(ctx, bins, testbed.ClusterOptions{
		Name: "hub", ControlPlaneOnly: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, err
	}
	kube, err := client.New(c.RESTConfig, client.Options{Scheme: Scheme()})
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("control-plane client: %w", err)
	}
	if err := install(ctx, kube); err != nil {
		c.Stop()
		return nil, err
	}
	return &ControlPlane{Cluster: c, Client: kube}, nil
}

// Scheme knows Kubernetes' built-in types, CRDs, and every fleetpulse type.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = fleetv1.AddToScheme(s)
	_ = cpv1.AddToScheme(s)
	return s
}

// install creates the CRDs, waits until they are served, and creates
// Namespace.
func install(ctx context.Context, c client.Client) error {
	crds, err := api.CRDs()
	if err != nil {
		return fmt.Errorf("read CRDs: %w", err)
	}
	for _, crd := range crds {
		if err := c.Create(ctx, crd); err != nil {
			return fmt.Errorf("create CRD %s: %w", crd.Name, err)
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(crd), got); err != nil {
				return false, nil
			}
			for _, cond := range got.Status.Conditions {
				if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return fmt.Errorf("CRD %s not established: %w", crd.Name, err)
		}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", Namespace, err)
	}
	return nil
}

// ManagerOption changes the options of a manager that StartManager runs.
type ManagerOption func(*ctrl.Options)

// InNamespaces confines a manager's cache, and so what its controllers watch
// and list, to the namespaced objects of these namespaces; cluster-scoped
// objects it sees all. Tests that run the same controller side by side on
// the shared control plane need it, or each test's controller also acts on
// the other tests' objects, with that test's configuration.
func InNamespaces(namespaces ...string) ManagerOption {
	return func(o *ctrl.Options) {
		o.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
}

// StartManager runs a controller-runtime manager on the control plane, with
// the controllers that setup adds, until the test ends; its caches are synced
// when StartManager returns. The manager logs warnings to the test's log.
func (cp *ControlPlane) StartManager(t testing.TB, setup func(ctrl.Manager) error, opts ...ManagerOption) ctrl.Manager {
	t.Helper()
	o := ctrl.Options{
		Scheme:                 Scheme(),
		Logger:                 logr.FromSlogHandler(testutil.Logger(t, slog.LevelWarn).Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Each test runs its own controllers: their names may repeat.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	for _, opt := range opts {
		opt(&o)
	}
	mgr, err := ctrl.NewManager(cp.RESTConfig, o)
	if err != nil {
		t.Fatalf("new manager: %v", err)
	}
	if err := setup(mgr); err != nil {
		t.Fatalf("set up controllers: %v", err)
	}
	testutil.Run(t, mgr.Start, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		t.Fatal("manager caches did not sync within a minute")
	}
	return mgr
}
