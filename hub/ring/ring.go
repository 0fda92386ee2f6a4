package ring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/grafana/dskit/dns"
	"github.com/grafana/dskit/kv"
	"github.com/grafana/dskit/kv/codec"
	"github.com/grafana/dskit/kv/memberlist"
	dskitring "github.com/grafana/dskit/ring"
	"github.com/grafana/dskit/services"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetpulse/fleetpulse/internal/kitlog"
)

const (
	// name is the ring's name in dskit's metrics and status page, and key
	// its key in the memberlist KV.
	name = "hub"
	key  = "hub"
)

// Ring answers which replicas own a cluster. A ring from New is a dskit
// service: it joins memberlist and registers this replica when it starts
// and leaves when it stops. A ring from Single owns every cluster itself.
type Ring struct {
	services.Service

	self   Instance
	cfg    Config
	logger *slog.Logger
	reg    prometheus.Registerer

	// Built when the service starts; nil for a single hub.
	kv     *memberlist.KVInitService
	client *dskitring.Ring
	lc     *dskitring.BasicLifecycler
}

// Single is the ring of a hub that runs alone: it owns every cluster and
// is its one peer.
func Single(self Instance) *Ring {
	r := &Ring{self: self}
	r.Service = services.NewIdleService(nil, nil).WithName("ring")
	return r
}

// New builds the ring of self; it joins when its service starts.
func New(cfg Config, self Instance, logger *slog.Logger, reg prometheus.Registerer) (*Ring, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid ring configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	self.ID = cfg.InstanceID
	r := &Ring{self: self, cfg: cfg, logger: logger, reg: reg}
	r.Service = services.NewBasicService(r.starting, r.running, r.stopping).WithName("ring")
	return r, nil
}

// Self is this replica.
func (r *Ring) Self() Instance { return r.self }

// Owners are the replicas that own cluster: replication-factor healthy
// instances picked by its token, ACTIVE ones first (a joining or leaving
// instance hands on to the next). Without a ring, this hub alone.
func (r *Ring) Owners(cluster string) ([]Instance, error) {
	if r.client == nil {
		return []Instance{r.self}, nil
	}
	rs, err := r.client.Get(Token(cluster), dskitring.Write, nil, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("owners of cluster %q: %w", cluster, err)
	}
	return instances(rs.Instances), nil
}

// Owns reports whether this replica is among the owners of cluster; a hub
// without a ring owns every cluster, and one whose ring cannot answer owns
// none.
func (r *Ring) Owns(cluster string) bool {
	owners, err := r.Owners(cluster)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(owners, func(in Instance) bool { return in.ID == r.self.ID })
}

// Peers are the healthy ACTIVE replicas, this one included, by ID.
func (r *Ring) Peers() ([]Instance, error) {
	if r.client == nil {
		return []Instance{r.self}, nil
	}
	rs, err := r.client.GetAllHealthy(dskitring.Write)
	if err != nil {
		return nil, fmt.Errorf("ring peers: %w", err)
	}
	return instances(rs.Instances), nil
}

// ReplicationFactor is how many replicas own each cluster; 1 without a ring.
func (r *Ring) ReplicationFactor() int {
	if r.client == nil {
		return 1
	}
	return r.client.ReplicationFactor()
}

// Client is dskit's ring client, for its helpers (DoBatch,
// ReplicationSet); nil without a ring.
func (r *Ring) Client() *dskitring.Ring { return r.client }

// ServeHTTP serves dskit's ring status page; without a ring it says so.
func (r *Ring) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if r.client == nil {
		http.Error(w, "this hub runs without a ring: it owns every cluster", http.StatusNotFound)
		return
	}
	r.client.ServeHTTP(w, req)
}

func instances(descs []dskitring.InstanceDesc) []Instance {
	out := make([]Instance, 0, len(descs))
	for _, d := range descs {
		out = append(out, decodeInstance(d.Id, d.Addr))
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// starting joins memberlist, registers this replica JOINING, and returns
// once the ring client sees it so; Activate makes it an owner.
func (r *Ring) starting(ctx context.Context) (err error) {
	klog := kitlog.New(r.logger)
	mlCfg := r.cfg.Memberlist
	mlCfg.Codecs = []codec.Codec{dskitring.GetCodec()}
	r.kv = memberlist.NewKVInitService(&mlCfg, klog, dns.NewProvider(dns.GolangResolverType, 0, klog, r.reg), r.reg)
	if err := start(ctx, r.kv); err != nil {
		return fmt.Errorf("start memberlist: %w", err)
	}
	defer func() {
		if err != nil {
			_ = services.StopAndAwaitTerminated(context.Background(), r.kv)
		}
	}()
	store, err := kv.NewClient(kv.Config{Store: "memberlist", StoreConfig: kv.StoreConfig{MemberlistKV: r.kv.GetMemberlistKV}},
		dskitring.GetCodec(), kv.RegistererWithKVName(r.reg, name), klog)
	if err != nil {
		return fmt.Errorf("ring KV client: %w", err)
	}
	r.client, err = dskitring.NewWithStoreClientAndStrategy(dskitring.Config{HeartbeatTimeout: r.cfg.HeartbeatTimeout,
		ReplicationFactor: r.cfg.ReplicationFactor}, name, key, store, dskitring.NewIgnoreUnhealthyInstancesReplicationStrategy(), r.reg, klog)
	if err != nil {
		return fmt.Errorf("ring client: %w", err)
	}
	// Registered JOINING, and ACTIVE once the hub serves (Activate): a
	// replica owns no cluster and is read by no peer before its gateway
	// and StoreAPI answer. It holds no data it must receive before it
	// owns clusters or hand over before it goes (its blocks stay readable
	// in the bucket and through its StoreAPI), so it is removed when it
	// stops without going LEAVING first. A replica silent for a heartbeat timeout
	// (killed, not stopped) is removed by whichever replica heartbeats
	// next, so that its clusters have healthy owners again: until then the
	// ring names it owner, and it is unhealthy.
	var delegate dskitring.BasicLifecyclerDelegate = dskitring.NewInstanceRegisterDelegate(dskitring.JOINING, r.cfg.NumTokens)
	delegate = dskitring.NewAutoForgetDelegate(r.cfg.HeartbeatTimeout, delegate, klog)
	r.lc, err = dskitring.NewBasicLifecycler(dskitring.BasicLifecyclerConfig{ID: r.self.ID, Addr: encodeAddr(r.self),
		HeartbeatPeriod: r.cfg.HeartbeatPeriod, HeartbeatTimeout: r.cfg.HeartbeatTimeout, TokensObservePeriod: 0,
		NumTokens: r.cfg.NumTokens}, name, key, store, delegate, klog, r.reg)
	if err != nil {
		return fmt.Errorf("ring lifecycler: %w", err)
	}
	if err := start(ctx, r.client); err != nil {
		return fmt.Errorf("start the ring client: %w", err)
	}
	if err := start(ctx, r.lc); err != nil {
		_ = services.StopAndAwaitTerminated(context.Background(), r.client)
		return fmt.Errorf("register in the ring: %w", err)
	}
	if err := dskitring.WaitInstanceState(ctx, r.client, r.self.ID, dskitring.JOINING); err != nil {
		_ = services.StopAndAwaitTerminated(context.Background(), r.lc)
		_ = services.StopAndAwaitTerminated(context.Background(), r.client)
		return fmt.Errorf("wait to see this replica JOINING in the ring: %w", err)
	}
	r.logger.Info("joined the ring", "instance", r.self.ID, "agents", r.self.HTTPAddr, "grpc", r.self.GRPCAddr,
		"replication_factor", r.cfg.ReplicationFactor, "join", r.cfg.Memberlist.JoinMembers.String())
	return nil
}

// start starts s for as long as the ring runs (a dskit service's context
// bounds its whole life, not only its start) and waits, within ctx, until
// it runs.
func start(ctx context.Context, s services.Service) error {
	if err := s.StartAsync(context.Background()); err != nil {
		return err
	}
	return s.AwaitRunning(ctx)
}

// Activate makes this replica ACTIVE and returns once the ring client
// sees it so: from then on Owners counts it, and its peers read it. The
// hub calls it once it serves. Without a ring it does nothing.
func (r *Ring) Activate(ctx context.Context) error {
	if r.lc == nil {
		return nil
	}
	if err := r.lc.ChangeState(ctx, dskitring.ACTIVE); err != nil {
		return fmt.Errorf("turn ACTIVE in the ring: %w", err)
	}
	if err := dskitring.WaitInstanceState(ctx, r.client, r.self.ID, dskitring.ACTIVE); err != nil {
		return fmt.Errorf("wait to see this replica ACTIVE in the ring: %w", err)
	}
	return nil
}

func (r *Ring) running(ctx context.Context) error {
	w := services.NewFailureWatcher()
	w.WatchService(r.kv)
	w.WatchService(r.client)
	w.WatchService(r.lc)
	select {
	case <-ctx.Done():
		return nil
	case err := <-w.Chan():
		return fmt.Errorf("ring: %w", err)
	}
}

// stopping leaves in order: the lifecycler removes this replica from the
// ring (its clusters move to the others at once), memberlist gossips that
// before it leaves itself.
func (r *Ring) stopping(error) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	for _, s := range []services.Service{r.lc, r.client, r.kv} {
		if err := services.StopAndAwaitTerminated(ctx, s); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// MemberlistPort is the port memberlist listens on, once the ring runs
// (--memberlist.bind-port 0 picks a free one); 0 without a ring.
func (r *Ring) MemberlistPort() int {
	if r.kv == nil {
		return 0
	}
	m, err := r.kv.GetMemberlistKV()
	if err != nil {
		return 0
	}
	return m.GetListeningPort()
}
