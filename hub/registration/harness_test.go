package registration

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	hubcp "github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// t0 is where the tests' clocks start: whole seconds, as the API keeps them.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// testPeriod is the clusters' heartbeat period in these tests; with three
// grace periods a cluster goes Unknown after 30 s of silence.
const (
	testPeriod  = 10
	testGrace   = 3 * testPeriod * time.Second
	testRefresh = 40 * time.Second
)

// harness is registration's controllers on the package's control plane,
// reading the time from a fake clock and their inventory from a fake
// store. Tests share the control plane and run one after another (each
// harness reconciles every ManagedCluster), so each names its clusters
// apart.
type harness struct {
	t     *testing.T
	s     *Service
	kube  client.Client
	clock *clocktesting.FakeClock
	store *fakeStore

	mu           sync.Mutex
	deregistered []string
}

func startHarness(t *testing.T, opts ...func(*Service)) *harness {
	t.Helper()
	cp := controlplane.Start(t)
	cfg := DefaultConfig()
	cfg.Namespace = controlplane.Namespace
	cfg.GracePeriods = 3
	cfg.DefaultHeartbeatPeriodSeconds = testPeriod
	cfg.InventoryInterval = 100 * time.Millisecond
	cfg.RefreshInterval = testRefresh
	cfg.Workers = 2
	h := &harness{t: t, kube: cp.Client, clock: clocktesting.NewFakeClock(t0), store: &fakeStore{}}
	// Each test runs its own manager on the shared control plane.
	planeCfg := hubcp.DefaultConfig()
	planeCfg.LeaderElect = false
	plane, err := hubcp.New(cp.RESTConfig, planeCfg, cfg.Namespace, testutil.Logger(t, slog.LevelWarn), nil, CacheByObject(cfg))
	require.NoError(t, err)
	s, err := Setup(plane.Manager(), cfg, nil, h.store.query, nil, testutil.Logger(t, slog.LevelWarn), prometheus.NewRegistry())
	require.NoError(t, err)
	s.clock = h.clock
	// The controller comes back to every cluster this often, so that the
	// next pass after the fake clock moves sees it within this.
	s.resync = 100 * time.Millisecond
	for _, o := range opts {
		o(s)
	}
	s.OnDeregistered(func(cluster string) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if !slices.Contains(h.deregistered, cluster) {
			h.deregistered = append(h.deregistered, cluster)
		}
	})
	h.s = s
	testutil.Run(t, plane.Run, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		return plane.WaitReady(ctx)
	})
	return h
}

// accepted is an accepted cluster with the tests' heartbeat period.
func accepted(name string, taints ...fleetv1.Taint) *fleetv1.ManagedCluster {
	return &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: fleetv1.ManagedClusterSpec{Accepted: true, HeartbeatPeriodSeconds: testPeriod, Taints: taints}}
}

// heartbeat delivers a heartbeat as the gateway does, at the clock's time.
func (h *harness) heartbeat(cluster string, reachable bool, apiErr string) {
	h.s.tracker.beat(cluster, beat{At: h.clock.Now(), ClusterAPIReachable: reachable, ClusterAPIError: apiErr,
		AgentVersion: "v1.2.3", Claims: nil})
}

// step moves the clock on.
func (h *harness) step(d time.Duration) { h.clock.Step(d) }

// waitCluster polls the ManagedCluster until check accepts it.
func (h *harness) waitCluster(name string, check func(*fleetv1.ManagedCluster) error) {
	h.t.Helper()
	testutil.Eventually(h.t, 10*time.Second, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := h.kube.Get(context.Background(), client.ObjectKey{Name: name}, mc); err != nil {
			return err
		}
		return check(mc)
	})
}

// lease returns the cluster's Lease.
func (h *harness) lease(cluster string) (*coordinationv1.Lease, error) {
	l := &coordinationv1.Lease{}
	err := h.kube.Get(context.Background(), client.ObjectKey{Namespace: cluster, Name: leaseName}, l)
	return l, err
}

func (h *harness) wasDeregistered(cluster string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.deregistered, cluster)
}

// hasCondition checks one condition of mc, observed for its generation.
func hasCondition(mc *fleetv1.ManagedCluster, typ string, status metav1.ConditionStatus, reason, message string) error {
	c := meta.FindStatusCondition(mc.Status.Conditions, typ)
	if c == nil || c.Status != status || c.Reason != reason || c.Message != message || c.ObservedGeneration != mc.Generation {
		return fmt.Errorf("%s: condition %s = %+v, want %s %s %q", mc.Name, typ, c, status, reason, message)
	}
	return nil
}

// taintsAre checks mc's taints: keys and when each was added.
func taintsAre(mc *fleetv1.ManagedCluster, want map[string]time.Time) error {
	got := map[string]time.Time{}
	for _, tn := range mc.Spec.Taints {
		if tn.Effect != fleetv1.TaintNoSelect {
			return fmt.Errorf("%s: taint %s has effect %s, want NoSelect", mc.Name, tn.Key, tn.Effect)
		}
		got[tn.Key] = tn.TimeAdded.UTC()
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("%s: taints %v, want %v", mc.Name, got, want)
	}
	return nil
}

// all runs checks in order and returns the first failure.
func all(checks ...func() error) error {
	for _, c := range checks {
		if err := c(); err != nil {
			return err
		}
	}
	return nil
}

// fakeStore answers the inventory poller's queries with what the test set,
// as the hub's store would from the agents' series.
type fakeStore struct {
	mu      sync.Mutex
	answers map[string]promql.Vector
}

func (f *fakeStore) set(expr string, samples ...promql.Sample) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.answers == nil {
		f.answers = map[string]promql.Vector{}
	}
	f.answers[expr] = samples
}

func (f *fakeStore) query(_ context.Context, expr string, _ time.Time) (promql.Vector, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.answers[expr]), nil
}

func sample(v float64, kv ...string) promql.Sample {
	return promql.Sample{Metric: labels.FromStrings(kv...), F: v}
}
