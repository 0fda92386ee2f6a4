package registration

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/source"

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
	// RefreshInterval is how often a heartbeating cluster whose state does
	// not change costs a write: its Lease and status.lastHeartbeatTime are
	// written on change and at most once per refresh otherwise.
	RefreshInterval time.Duration
	// AvailabilityWorkers write availability transitions (a cluster silent
	// past its grace, an agent that lost its apiserver, and back) on a
	// queue and a control-plane client of their own, ahead of the
	// controller's routine writes.
	AvailabilityWorkers int
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
		DefaultHeartbeatPeriodSeconds: 30, InventoryInterval: 15 * time.Second, RefreshInterval: 5 * time.Minute,
		AvailabilityWorkers: 4, Workers: 16,
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
	if c.RefreshInterval < time.Second {
		errs = append(errs, fmt.Errorf("refresh interval must be at least 1s, got %s", c.RefreshInterval))
	}
	if c.AvailabilityWorkers < 1 {
		errs = append(errs, fmt.Errorf("availability workers must be at least 1, got %d", c.AvailabilityWorkers))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("workers must be at least 1, got %d", c.Workers))
	}
	if c.RegisterRatePerSource < 0 {
		errs = append(errs, fmt.Errorf("registration rate per source must not be negative, got %g", c.RegisterRatePerSource))
	}
	if c.RegisterRatePerSource > 0 && (c.RegisterBurstPerSource < 1 || c.RegisterSources < 1) {
		errs = append(errs, fmt.Errorf("registration burst per source (%d) and sources tracked (%d) must be at least 1", c.RegisterBurstPerSource, c.RegisterSources))
	}
	return errors.Join(errs...)
}

// CacheByObject is what registration's informers need of Kubernetes' own
// types, for the control plane's manager (controlplane.New): the clusters'
// namespaces, the clusters' Leases and the ClusterProfiles in cfg's
// namespace, not every namespace, Lease and profile of the apiserver.
func CacheByObject(cfg Config) map[client.Object]cache.ByObject {
	hasCluster, _ := labels.NewRequirement(fleetv1.LabelCluster, selection.Exists, nil)
	return map[client.Object]cache.ByObject{
		&corev1.Namespace{}:       {Label: labels.NewSelector().Add(*hasCluster)},
		&coordinationv1.Lease{}:   {Field: fields.OneTermEqualSelector("metadata.name", leaseName)},
		&cpv1.ClusterProfile{}:    {Namespaces: map[string]cache.Config{cfg.Namespace: {}}},
		&fleetv1.ManagedCluster{}: {},
	}
}

// Service is registration on one hub.
type Service struct {
	cfg    Config
	logger *slog.Logger
	cache  client.Reader // informer caches
	reader client.Reader // the apiserver, uncached
	writer client.Client
	// urgentWriter is the availability workers' client: its rate limit is
	// theirs alone.
	urgentWriter client.Client
	urgent       workqueue.TypedRateLimitingInterface[string]
	tokens       *Tokens
	ca           *CA
	tracker      *tracker
	// informers are the manager's, whose Lease watch brings the
	// heartbeats other replicas relay (relay.go).
	informers cache.Informers
	// leading reports whether this replica leads the controllers; nil for
	// one hub. relays are what it relayed to the leader.
	leading   func() bool
	relays    relays
	inventory *inventories
	query     query.QueryFunc
	store     events.Appenders
	// clock is where the controller, the gateway and the inventory poller
	// read the time; nil is the system clock (tests set a fake one).
	clock clock.PassiveClock
	// resync is how often the controller comes back to a cluster at most;
	// 0 is the refresh interval (tests shorten it to follow their clock).
	resync time.Duration

	startOnce sync.Once
	started   time.Time

	requests    *prometheus.CounterVec
	leaseWrites prometheus.Counter
	transitions *prometheus.CounterVec
	lossDelay   prometheus.Histogram
	audits      *prometheus.CounterVec
	limiter     *sourceLimiter

	deregMu      sync.Mutex
	deregistered []func(cluster string)
}

// Setup adds registration to the control plane's manager, built with
// CacheByObject(cfg): the ManagedCluster and ClusterSet controllers, and
// the poller that reads clusters' inventory from their telemetry, which
// the manager runs and joins with the controllers. instant reads the hub's
// telemetry; store takes the heartbeat series. The gateway's endpoints are
// added by Routes.
func Setup(mgr manager.Manager, cfg Config, ca *CA, instant query.QueryFunc, store events.Appenders, logger *slog.Logger,
	reg prometheus.Registerer) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid registration configuration: %w", err)
	}
	// Tokens (Secrets) and the reads that must see the latest write go to
	// the apiserver: a cache of every Secret is not wanted.
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("control-plane client: %w", err)
	}
	urgentWriter, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, fmt.Errorf("control-plane client for availability: %w", err)
	}
	s := &Service{
		cfg: cfg, logger: logger, cache: mgr.GetClient(), informers: mgr.GetCache(), reader: direct, writer: direct, urgentWriter: urgentWriter, urgent: newAvailabilityQueue(),
		tokens: NewTokens(direct, cfg.Namespace), ca: ca, inventory: &inventories{}, query: instant, store: store,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_gateway_requests_total", Help: "Agent gateway requests by endpoint and result.",
		}, []string{"endpoint", "result"}),
		leaseWrites: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_cluster_lease_writes_total", Help: "Writes of clusters' Leases (heartbeats are coalesced into them).",
		}),
		transitions: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_cluster_availability_transitions_total",
			Help: "Availability transitions written ahead of routine work, by the Available condition's new status.",
		}, []string{"available"}),
		lossDelay: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetpulse_hub_cluster_unknown_delay_seconds",
			Help:    "Time from a cluster's grace running out to its Available condition written Unknown.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300},
		}),
		audits:  newAuditCounter(reg),
		limiter: newSourceLimiter(cfg.RegisterRatePerSource, cfg.RegisterBurstPerSource, cfg.RegisterSources),
	}
	// The informers the controllers read start with the cache, so that the
	// manager is ready only once they have synced, rather than each on its
	// first read: one started that late can outlive a shutdown.
	for _, obj := range []client.Object{&corev1.Namespace{}, &coordinationv1.Lease{}, &cpv1.ClusterProfile{}} {
		if _, err := mgr.GetCache().GetInformer(context.Background(), obj, cache.BlockUntilSynced(false)); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	s.tracker = newTracker(func(name string) time.Duration {
		mc := &fleetv1.ManagedCluster{}
		if err := s.cache.Get(context.Background(), client.ObjectKey{Name: name}, mc); err != nil {
			return time.Duration(cfg.GracePeriods*int(cfg.DefaultHeartbeatPeriodSeconds)) * time.Second
		}
		return s.grace(mc)
	}, s.urgent.Add)
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
	// The availability path runs on the leader beside the controller: the
	// hand-over of heartbeats to the controller, the watch for silent
	// clusters and the workers that write transitions.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		s.runAvailabilityPath(ctx)
		return nil
	})); err != nil {
		return nil, fmt.Errorf("add the availability path: %w", err)
	}
	// The manager joins the poller before its Start returns: the poller
	// queries the store, which the hub closes next.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		s.pollInventory(ctx)
		return nil
	})); err != nil {
		return nil, fmt.Errorf("add the inventory poller: %w", err)
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

// trackingSince is when this hub began to track heartbeats for its
// controllers: the first time it was asked.
func (s *Service) trackingSince() time.Time {
	s.startOnce.Do(func() { s.started = s.now() })
	return s.started
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
