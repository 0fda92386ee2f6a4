package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// InCluster, as a kubeconfig, names the cluster the hub runs in: the pod's
// service account reaches its apiserver (deploy/hub).
const InCluster = "in-cluster"

// Config configures the control plane's client.
type Config struct {
	// ClientQPS and ClientBurst bound the manager's requests to the
	// apiserver per resource type, when the rest.Config given to New sets
	// no limit of its own. Each cluster costs a few writes when it joins,
	// then a Lease renewal every half grace period and a status write every
	// grace period: at 10,000 clusters with registration's defaults that is
	// about 330 writes per second, where client-go's default of 5 would
	// throttle the controllers (and registration with them) to a crawl.
	ClientQPS   float32
	ClientBurst int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{ClientQPS: 500, ClientBurst: 1000}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ClientQPS <= 0 || c.ClientBurst < 1 {
		errs = append(errs, fmt.Errorf("control-plane client qps (%g) and burst (%d) must be positive", c.ClientQPS, c.ClientBurst))
	}
	return errors.Join(errs...)
}

// ControlPlane is the controller manager on the hub's kube-apiserver.
type ControlPlane struct {
	mgr manager.Manager
}

// New builds the manager over restCfg, with Scheme. byObject narrows what
// its informers cache of some types (registration.CacheByObject): the
// maps given are merged. It starts nothing.
func New(restCfg *rest.Config, cfg Config, logger *slog.Logger, byObject ...map[client.Object]cache.ByObject) (*ControlPlane, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid control-plane configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if restCfg.QPS == 0 && restCfg.RateLimiter == nil {
		restCfg = rest.CopyConfig(restCfg)
		restCfg.QPS, restCfg.Burst = cfg.ClientQPS, cfg.ClientBurst
	}
	objects := map[client.Object]cache.ByObject{}
	for _, m := range byObject {
		maps.Copy(objects, m)
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 Scheme(),
		Logger:                 logr.FromSlogHandler(logger.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Controller names are unique per process by default; tests and the
		// benchmarks run several hubs in one.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		Cache:      cache.Options{ByObject: objects},
	})
	if err != nil {
		return nil, fmt.Errorf("control-plane manager: %w", err)
	}
	return &ControlPlane{mgr: mgr}, nil
}

// Manager is the controller manager, for controller sets to Setup on
// before Run.
func (c *ControlPlane) Manager() manager.Manager { return c.mgr }

// Run runs the controllers until ctx ends, and returns once they and every
// other runnable added to the manager have stopped.
func (c *ControlPlane) Run(ctx context.Context) error {
	return c.mgr.Start(ctx)
}

// WaitReady blocks until the manager's caches are synced (or ctx ends), so
// that what reads them (registration's identification of clusters) sees
// every object.
func (c *ControlPlane) WaitReady(ctx context.Context) bool {
	return c.mgr.GetCache().WaitForCacheSync(ctx)
}

// RESTConfig loads the control plane's kubeconfig, or the pod's service
// account for InCluster.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == InCluster {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("control plane %q (the pod's service account): %w", InCluster, err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("control-plane kubeconfig: %w", err)
	}
	return cfg, nil
}
