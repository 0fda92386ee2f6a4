package k8sevents

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/extension/xextension/storage"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/fleetpulse/fleetpulse/receiver/internal/kubeapi"
	"github.com/fleetpulse/fleetpulse/receiver/k8sevents/internal/metadata"
)

const (
	storageKey   = "watermark"
	persistEvery = time.Second
)

// watermark is the newest observation time sent, with the events sent at
// exactly that time (timestamps have second precision).
type watermark struct {
	Time time.Time `json:"time"`
	At   []string  `json:"at"` // uid/resourceVersion
}

type eventsReceiver struct {
	cfg  *Config
	set  receiver.Settings
	next consumer.Logs

	limiter             *rate.Limiter
	sentCtr, droppedCtr metric.Int64Counter
	sent, dropped       atomic.Int64 // the same counts, for tests and logs

	client  *kubeapi.Client
	storage storage.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu    sync.Mutex
	seen  map[types.UID]string // resourceVersion sent, per event
	mark  watermark
	atSet map[string]bool
	dirty bool
}

func newReceiver(cfg *Config, set receiver.Settings, next consumer.Logs) (*eventsReceiver, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create the receiver's telemetry: %w", err)
	}
	return &eventsReceiver{
		cfg: cfg, set: set, next: next,
		limiter: rate.NewLimiter(rate.Limit(cfg.MaxPerSecond), cfg.Burst),
		sentCtr: tb.K8sEventsSent, droppedCtr: tb.K8sEventsDropped,
		seen: map[types.UID]string{}, atSet: map[string]bool{},
	}, nil
}

// Start loads the watermark and starts watching; an unreachable apiserver is
// retried by the informers, not fatal.
func (r *eventsReceiver) Start(ctx context.Context, host component.Host) error {
	client, err := r.cfg.Client("fleetpulse-agent/k8s_events")
	if err != nil {
		return err
	}
	r.client = client
	if err := r.loadWatermark(ctx, host); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	namespaces := r.cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{corev1.NamespaceAll}
	}
	for _, ns := range namespaces {
		inf := client.Informer(kubeapi.Events, ns, 0)
		if err := inf.SetTransform(slimEvent); err != nil {
			cancel()
			return fmt.Errorf("set event transform: %w", err)
		}
		if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { r.handle(runCtx, obj) },
			UpdateFunc: func(_, obj any) { r.handle(runCtx, obj) },
			DeleteFunc: r.forget,
		}); err != nil {
			cancel()
			return fmt.Errorf("add event handler: %w", err)
		}
		r.wg.Add(1)
		go func() { defer r.wg.Done(); inf.RunWithContext(runCtx) }()
	}
	if r.storage != nil {
		r.wg.Add(1)
		go func() { defer r.wg.Done(); r.persistLoop(runCtx) }()
	}
	r.set.Logger.Info("watching Kubernetes events", zap.String("host", client.Host()), zap.Strings("namespaces", r.cfg.Namespaces), zap.Time("after", r.mark.Time))
	return nil
}

// Shutdown stops watching and saves the watermark.
func (r *eventsReceiver) Shutdown(ctx context.Context) error {
	if r.cancel != nil {
		r.cancel()
		r.wg.Wait()
	}
	if r.storage == nil {
		return nil
	}
	err := r.persist(ctx)
	if cerr := r.storage.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

func (r *eventsReceiver) loadWatermark(ctx context.Context, host component.Host) error {
	if r.cfg.StorageID == nil {
		// Nothing remembered: send what happens from now on.
		r.mark = watermark{Time: time.Now().Truncate(time.Second)}
		return nil
	}
	ext, ok := host.GetExtensions()[*r.cfg.StorageID]
	if !ok {
		return fmt.Errorf(`"storage" %s: no such extension in the service`, r.cfg.StorageID)
	}
	se, ok := ext.(storage.Extension)
	if !ok {
		return fmt.Errorf(`"storage" %s: not a storage extension`, r.cfg.StorageID)
	}
	client, err := se.GetClient(ctx, component.KindReceiver, r.set.ID, "events")
	if err != nil {
		return fmt.Errorf("open event watermark storage: %w", err)
	}
	r.storage = client
	b, err := client.Get(ctx, storageKey)
	if err != nil {
		return fmt.Errorf("read event watermark: %w", err)
	}
	if b == nil {
		r.mark = watermark{Time: time.Now().Truncate(time.Second)}
		return nil
	}
	if err := json.Unmarshal(b, &r.mark); err != nil {
		r.set.Logger.Warn("unreadable event watermark; sending only new events", zap.Error(err))
		r.mark = watermark{Time: time.Now().Truncate(time.Second)}
	}
	for _, k := range r.mark.At {
		r.atSet[k] = true
	}
	return nil
}

func (r *eventsReceiver) persistLoop(ctx context.Context) {
	t := time.NewTicker(persistEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := r.persist(ctx); err != nil {
				r.set.Logger.Warn("cannot save the event watermark", zap.Error(err))
			}
		}
	}
}

func (r *eventsReceiver) persist(ctx context.Context) error {
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	m := watermark{Time: r.mark.Time}
	for k := range r.atSet {
		m.At = append(m.At, k)
	}
	r.dirty = false
	r.mu.Unlock()
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return r.storage.Set(ctx, storageKey, b)
}

// handle sends an event occurrence once: not again on re-list or resync
// (same resourceVersion), and not if it was sent before a restart.
func (r *eventsReceiver) handle(ctx context.Context, obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return
	}
	t := observedTime(ev)
	key := string(ev.UID) + "/" + ev.ResourceVersion
	r.mu.Lock()
	if r.seen[ev.UID] == ev.ResourceVersion {
		r.mu.Unlock()
		return
	}
	r.seen[ev.UID] = ev.ResourceVersion
	if t.Before(r.mark.Time) || (t.Equal(r.mark.Time) && r.atSet[key]) {
		r.mu.Unlock()
		return
	}
	if t.After(r.mark.Time) {
		r.mark.Time = t
		r.atSet = map[string]bool{}
	}
	r.atSet[key] = true
	r.dirty = true
	r.mu.Unlock()

	if !r.limiter.Allow() {
		if r.dropped.Add(1)%100 == 1 {
			r.set.Logger.Warn("Kubernetes events over the rate bound are dropped", zap.Float64("max_per_second", r.cfg.MaxPerSecond), zap.Int64("dropped_so_far", r.dropped.Load()))
		}
		r.droppedCtr.Add(ctx, 1)
		return
	}
	if err := r.next.ConsumeLogs(ctx, toLogs(ev, t)); err != nil {
		r.set.Logger.Warn("next consumer refused a Kubernetes event", zap.Error(err))
		return
	}
	r.sent.Add(1)
	r.sentCtr.Add(ctx, 1)
}

func (r *eventsReceiver) forget(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if ev, ok := obj.(*corev1.Event); ok {
		r.mu.Lock()
		delete(r.seen, ev.UID)
		r.mu.Unlock()
	}
}
