package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
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
	// LeaderElect elects one hub replica, over a Lease on the control
	// plane, to run the controllers; the others keep the manager's caches
	// synced (registration's authenticator and the agents' gateways read
	// them) and take over when the leader's Lease expires. Off, every hub
	// runs every controller: right for one replica only.
	LeaderElect bool
	// LeaseDuration is how long a leader's Lease holds without renewal:
	// the longest the controllers stop when the leader dies without
	// releasing it. RenewDeadline is how long the leader keeps trying to
	// renew before it gives up leading; RetryPeriod is how often replicas
	// try to acquire or renew.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// LeaseName is the Lease, in the registration namespace, that the hub
// replicas elect their controllers' leader over.
const LeaseName = "fleetpulse-hub-controllers"

// DefaultConfig returns the defaults: leader election on, with
// controller-runtime's and kube-controller-manager's timings.
func DefaultConfig() Config {
	return Config{ClientQPS: 500, ClientBurst: 1000, LeaderElect: true,
		LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ClientQPS <= 0 || c.ClientBurst < 1 {
		errs = append(errs, fmt.Errorf("control-plane client qps (%g) and burst (%d) must be positive", c.ClientQPS, c.ClientBurst))
	}
	if c.LeaderElect && (c.RetryPeriod <= 0 || c.RenewDeadline <= c.RetryPeriod || c.LeaseDuration <= c.RenewDeadline) {
		errs = append(errs, fmt.Errorf("leader election wants lease duration (%s) > renew deadline (%s) > retry period (%s) > 0",
			c.LeaseDuration, c.RenewDeadline, c.RetryPeriod))
	}
	return errors.Join(errs...)
}

// ControlPlane is the controller manager on the hub's kube-apiserver.
type ControlPlane struct {
	mgr     manager.Manager
	leader  prometheus.Gauge
	leading atomic.Bool
}

// New builds the manager over restCfg, with Scheme, electing its leader in
// namespace when cfg.LeaderElect. byObject narrows what its informers cache
// of some types (registration.CacheByObject): the maps given are merged.
// It starts nothing.
func New(restCfg *rest.Config, cfg Config, namespace string, logger *slog.Logger, reg prometheus.Registerer,
	byObject ...map[client.Object]cache.ByObject) (*ControlPlane, error) {
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
		// Every runnable that does not say otherwise (controllers, pollers)
		// runs on the leader only; a replica stopping gracefully hands the
		// Lease over at once instead of letting it expire.
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &cfg.LeaseDuration,
		RenewDeadline:                 &cfg.RenewDeadline,
		RetryPeriod:                   &cfg.RetryPeriod,
	})
	if err != nil {
		return nil, fmt.Errorf("control-plane manager: %w", err)
	}
	c := &ControlPlane{mgr: mgr, leader: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "fleetpulse_hub_controllers_leader",
		Help: "1 while this hub runs the control-plane controllers (it holds the Lease, or leader election is off), else 0.",
	})}
	if err := mgr.Add(EveryReplica(func(ctx context.Context) error {
		select {
		case <-mgr.Elected():
			c.leading.Store(true)
			c.leader.Set(1)
		case <-ctx.Done():
		}
		<-ctx.Done()
		c.leading.Store(false)
		c.leader.Set(0)
		return nil
	})); err != nil {
		return nil, fmt.Errorf("control-plane manager: %w", err)
	}
	return c, nil
}

// Leading reports whether this hub runs the controllers: it was elected
// leader, or leader election is off, and the manager runs.
func (c *ControlPlane) Leading() bool { return c.leading.Load() }

// EveryReplica is a runnable for the manager that runs on every hub
// replica, leader or not: what serves agents (the gateways' long polls)
// rather than reconciling.
func EveryReplica(run func(context.Context) error) manager.Runnable { return everyReplica(run) }

type everyReplica func(context.Context) error

func (r everyReplica) Start(ctx context.Context) error { return r(ctx) }
func (everyReplica) NeedLeaderElection() bool          { return false }

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
