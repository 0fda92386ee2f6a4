package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/fleetpulse/fleetpulse/api"
	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/events"
	"github.com/fleetpulse/fleetpulse/hub/query"
)

// Config configures registration.
type Config struct {
	// Namespace holds bootstrap tokens and ClusterProfiles.
	Namespace string
	// CertificateTTL is the lifetime of agents' client certificates; agents
	// renew at about 80 % of it.
	CertificateTTL time.Duration
	// GracePeriods is how many heartbeat periods a cluster may miss before
	// it goes Unknown and is tainted unreachable.
	GracePeriods int
	// DefaultHeartbeatPeriodSeconds is given to newly registered clusters.
	DefaultHeartbeatPeriodSeconds int32
	// InventoryInterval is how often the hub reads clusters' inventory from
	// their telemetry.
	InventoryInterval time.Duration
	// ClientQPS and ClientBurst bound the control-plane client's requests
	// per resource type, when the rest.Config given to New sets no limit of
	// its own. Each cluster costs a few writes when it joins, then a Lease
	// renewal every half grace period and a status write every grace
	// period: at 10,000 clusters with the defaults that is about 330 writes
	// per second, where client-go's default of 5 would throttle the
	// controller (and registration with it) to a crawl.
	ClientQPS   float32
	ClientBurst int
	// Workers reconcile ManagedClusters concurrently. A reconcile mostly
	// waits for the apiserver (a cluster's first heartbeat costs four
	// writes: taints, status, Lease, ClusterProfile), so joins and the
	// periodic Lease and status writes of thousands of clusters need more
	// than a handful in flight.
	Workers int
	// RegisterRatePerSource and RegisterBurstPerSource limit refused
	// registration calls (bad or missing tokens) per source address (an
	// IPv6 source by its /64): guessing tokens must be slow. A source over
	// it is refused every call until its budget refills; calls that pass
	// cost nothing, so clusters joining in numbers behind one NAT address
	// are not slowed. 0 means no limit.
	RegisterRatePerSource  float64
	RegisterBurstPerSource int
	// RegisterSources bounds the sources whose limits are tracked; the
	// least recently seen are forgotten first.
	RegisterSources int
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Namespace: "fleetpulse-system", CertificateTTL: 24 * time.Hour, GracePeriods: 3,
		DefaultHeartbeatPeriodSeconds: 30, InventoryInterval: 15 * time.Second, ClientQPS: 500, ClientBurst: 1000, Workers: 16,
		RegisterRatePerSource: 1, RegisterBurstPerSource: 20, RegisterSources: 10000}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Namespace == "" {
		errs = append(errs, errors.New("registration namespace is required"))
	}
	if c.CertificateTTL < 10*time.Minute {
		errs = append(errs, fmt.Errorf("certificate ttl %s: want at least 10m", c.CertificateTTL))
	}
	if c.GracePeriods < 1 {
		errs = append(errs, fmt.Errorf("grace periods must be at least 1, got %d", c.GracePeriods))
	}
	if c.DefaultHeartbeatPeriodSeconds < 1 {
		errs = append(errs, fmt.Errorf("default heartbeat period must be at least 1s, got %d", c.DefaultHeartbeatPeriodSeconds))
	}
	if c.InventoryInterval <= 0 {
		errs = append(errs, fmt.Errorf("inventory interval must be positive, got %s", c.InventoryInterval))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	if c.ClientQPS <= 0 || c.ClientBurst < 1 {
		errs = append(errs, fmt.Errorf("control-plane client qps (%g) and burst (%d) must be positive", c.ClientQPS, c.ClientBurst))
	}
	if c.RegisterRatePerSource < 0 {
		errs = append(errs, fmt.Errorf("registration rate per source must not be negative, got %g", c.RegisterRatePerSource))
	}
	if c.RegisterRatePerSource > 0 && (c.RegisterBurstPerSource < 1 || c.RegisterSources < 1) {
		errs = append(errs, fmt.Errorf("registration burst per source (%d) and sources tracked (%d) must be at least 1", c.RegisterBurstPerSource, c.RegisterSources))
	}
	return errors.Join(errs...)
}

// Scheme knows every type registration reads and writes.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	_ = fleetv1.AddToScheme(s)
	_ = cpv1.AddToScheme(s)
	return s
}

// Service is registration on one hub.
type Service struct {
	cfg       Config
	logger    *slog.Logger
	mgr       manager.Manager
	cache     client.Reader // informer caches
	reader    client.Reader // the apiserver, uncached
	writer    client.Client
	tokens    *Tokens
	ca        *CA
	tracker   *tracker
	inventory *inventories
	query     query.QueryFunc
	store     events.Appenders
	// clock is where the controller, the gateway and the inventory poller
	// read the time; nil is the system clock (tests set a fake one).
	clock clock.PassiveClock

	requests    *prometheus.CounterVec
	leaseWrites prometheus.Counter
	audits      *prometheus.CounterVec
	limiter     *sourceLimiter

	deregMu      sync.Mutex
	deregistered []func(cluster string)
}

// New builds registration over the hub's control plane. query reads the
// hub's telemetry; store takes the heartbeat series. It starts nothing.
func New(cfg Config, restCfg *rest.Config, ca *CA, query query.QueryFunc, store events.Appenders, logger *slog.Logger, reg prometheus.Registerer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid registration configuration: %w", err)
	}
	if restCfg.QPS == 0 && restCfg.RateLimiter == nil {
		restCfg = rest.CopyConfig(restCfg)
		restCfg.QPS, restCfg.Burst = cfg.ClientQPS, cfg.ClientBurst
	}
	scheme := Scheme()
	hasCluster, _ := labels.NewRequirement(fleetv1.LabelCluster, selection.Exists, nil)
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 scheme,
		Logger:                 logr.FromSlogHandler(logger.Handler()),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// Controller names are unique per process by default; tests and the
		// benchmarks run several hubs in one.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&corev1.Namespace{}:       {Label: labels.NewSelector().Add(*hasCluster)},
			&coordinationv1.Lease{}:   {Field: fields.OneTermEqualSelector("metadata.name", leaseName)},
			&cpv1.ClusterProfile{}:    {Namespaces: map[string]cache.Config{cfg.Namespace: {}}},
			&fleetv1.ManagedCluster{}: {},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("control-plane client: %w", err)
	}
	direct, err := client.New(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("control-plane client: %w", err)
	}
	s := &Service{
		cfg: cfg, logger: logger, mgr: mgr, cache: mgr.GetClient(), reader: direct, writer: direct,
		tokens: NewTokens(direct, cfg.Namespace), ca: ca, inventory: &inventories{}, query: query, store: store,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_gateway_requests_total", Help: "Agent gateway requests by endpoint and result.",
		}, []string{"endpoint", "result"}),
		leaseWrites: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_cluster_lease_writes_total", Help: "Writes of clusters' Leases (heartbeats are coalesced into them).",
		}),
		audits:  newAuditCounter(reg),
		limiter: newSourceLimiter(cfg.RegisterRatePerSource, cfg.RegisterBurstPerSource, cfg.RegisterSources),
	}
	s.tracker = newTracker(func(name string) time.Duration {
		mc := &fleetv1.ManagedCluster{}
		if err := s.cache.Get(context.Background(), client.ObjectKey{Name: name}, mc); err != nil {
			return time.Duration(cfg.GracePeriods*int(cfg.DefaultHeartbeatPeriodSeconds)) * time.Second
		}
		return s.grace(mc)
	})
	err = ctrl.NewControllerManagedBy(mgr).Named("managedcluster").
		For(&fleetv1.ManagedCluster{}).
		WatchesRawSource(source.Channel(s.tracker.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: cfg.Workers}).
		Complete(s)
	if err != nil {
		return nil, fmt.Errorf("build managedcluster controller: %w", err)
	}
	if err := (clusterSets{s}).setup(mgr); err != nil {
		return nil, fmt.Errorf("build clusterset controller: %w", err)
	}
	return s, nil
}

func (s *Service) count(endpoint, result string) { s.requests.WithLabelValues(endpoint, result).Inc() }

// now is the time on the service's clock.
func (s *Service) now() time.Time {
	if s.clock == nil {
		return time.Now()
	}
	return s.clock.Now()
}

// Manager is the controller manager on the hub's control plane, for the
// hub's other controllers (placement, work, actions) to join before Run.
func (s *Service) Manager() manager.Manager { return s.mgr }

// Query runs PromQL over the hub's telemetry.
func (s *Service) Query() query.QueryFunc { return s.query }

// Identity is what the gateway's other endpoints (work sync) use to name the
// calling cluster: the same checks as heartbeats, with the status to refuse
// with; the refusal writer flags deregistration.
func (s *Service) Identity(w http.ResponseWriter, r *http.Request) (cluster string, ok bool) {
	mc, status, err := s.identify(r.Context(), r)
	if err != nil {
		refuse(w, status, err)
		return "", false
	}
	return mc.Name, true
}

// OnDeregistered registers f to be called with a cluster's name when it is
// deregistered (its ManagedCluster's finalizer ran, or it is gone), so that
// per-cluster state elsewhere in the hub can be pruned. f may be called
// more than once for one deregistration and must be idempotent and quick:
// it runs on the controller's worker.
func (s *Service) OnDeregistered(f func(cluster string)) {
	s.deregMu.Lock()
	s.deregistered = append(s.deregistered, f)
	s.deregMu.Unlock()
}

// notifyDeregistered calls the OnDeregistered callbacks.
func (s *Service) notifyDeregistered(cluster string) {
	s.deregMu.Lock()
	fs := append([]func(string){}, s.deregistered...)
	s.deregMu.Unlock()
	for _, f := range fs {
		f(cluster)
	}
}

// Tokens is the bootstrap token store.
func (s *Service) Tokens() *Tokens { return s.tokens }

// InstallAt is Install over a client for restCfg.
func InstallAt(ctx context.Context, restCfg *rest.Config, namespace string) error {
	c, err := client.New(restCfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return fmt.Errorf("control-plane client: %w", err)
	}
	return Install(ctx, c, namespace)
}

// Install applies the API's CRDs, waits until they are served, and creates
// the registration namespace. It is idempotent.
func Install(ctx context.Context, c client.Client, namespace string) error {
	crds, err := api.CRDs()
	if err != nil {
		return err
	}
	for _, crd := range crds {
		existing := &apiextensionsv1.CustomResourceDefinition{}
		err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, existing)
		switch {
		case apierrors.IsNotFound(err):
			if err := c.Create(ctx, crd); err != nil {
				return fmt.Errorf("create CRD %s: %w", crd.Name, err)
			}
		case err != nil:
			return fmt.Errorf("get CRD %s: %w", crd.Name, err)
		default:
			existing.Spec = crd.Spec
			if err := c.Update(ctx, existing); err != nil {
				return fmt.Errorf("update CRD %s: %w", crd.Name, err)
			}
		}
	}
	for _, crd := range crds {
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			got := &apiextensionsv1.CustomResourceDefinition{}
			if err := c.Get(ctx, client.ObjectKey{Name: crd.Name}, got); err != nil {
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
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	return nil
}

// Run runs the controller and the inventory poller until ctx ends.
// Both are joined before it returns: the poller queries the store, which
// the caller closes next.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		s.pollInventory(ctx)
	}()
	defer func() {
		cancel()
		<-polled
	}()
	return s.mgr.Start(ctx)
}

// WaitReady blocks until the caches are synced, so that identification
// sees every cluster.
func (s *Service) WaitReady(ctx context.Context) bool {
	return s.mgr.GetCache().WaitForCacheSync(ctx)
}
