package limits

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"golang.org/x/time/rate"
)

// Options configure a Limiter.
type Options struct {
	// File is the limits file; Reload reads it again. Empty, every cluster
	// has DefaultLimits.
	File       string
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// HeadSeries counts a cluster's series in its shard's head
	// (metricstore.Store.HeadSeries). Without it, head_series limits count
	// only the series the ingest path created since the Limiter started.
	HeadSeries func(ctx context.Context, cluster string) (int, error)
	// ReconcileInterval is how often a cluster's head-series count is read
	// from the head again (DefaultReconcileInterval if 0).
	ReconcileInterval time.Duration
}

// DefaultReconcileInterval: the head drops series only at head compaction
// (every block duration, 2 h), so a count read every 30 s is never far off
// for long.
const DefaultReconcileInterval = 30 * time.Second

// refuseReconcileAfter is how old a count may be before a refusal for
// head series reads it again first: a cluster at its limit retries, and
// each retry should not cost a read of the head.
const refuseReconcileAfter = 5 * time.Second

// Limiter holds every cluster's limits and the state they need: a request
// token bucket and a head-series count.
//
// The head-series count costs the ingest path nothing per series: the
// hub's own paths count the series they create (a lookup they make anyway
// finds no series), and every ReconcileInterval, once a cluster sends, the
// count is set from the head: the length of the head's postings list of
// cluster="<name>", a walk of one array of series references under no
// lock (about a millisecond per 100k series), started by a request in the
// background. Between two reads the count is above the truth (series
// dropped at head compaction, or created twice by concurrent requests,
// are still counted) or, for series created through Prometheus's handler
// (histograms, exemplars), below it; a refusal reads it again first when
// it is older than a few seconds.
type Limiter struct {
	opts    Options
	limited *prometheus.CounterVec

	mu       sync.RWMutex
	cfg      Config
	clusters map[string]*Cluster
}

// New returns a Limiter with the limits of opts.File, or the defaults.
func New(opts Options) (*Limiter, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.ReconcileInterval <= 0 {
		opts.ReconcileInterval = DefaultReconcileInterval
	}
	cfg := DefaultConfig()
	if opts.File != "" {
		var err error
		if cfg, err = LoadFile(opts.File); err != nil {
			return nil, err
		}
	}
	l := &Limiter{
		opts: opts,
		cfg:  cfg,
		limited: promauto.With(opts.Registerer).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_ingest_limited_total",
			Help: "Remote-write requests refused for a limit, by cluster and limit; nothing of them was stored.",
		}, []string{"cluster", "limit"}),
		clusters: map[string]*Cluster{},
	}
	return l, nil
}

// Reload reads the limits file again and applies it; on error the limits
// in force stay. Without a file it does nothing.
func (l *Limiter) Reload() error {
	if l.opts.File == "" {
		return nil
	}
	cfg, err := LoadFile(l.opts.File)
	if err != nil {
		return err
	}
	l.Apply(cfg)
	l.opts.Logger.Info("ingest limits reloaded", "file", l.opts.File, "clusters_with_overrides", len(cfg.Clusters))
	return nil
}

// Apply puts cfg, which must be valid, in force for every cluster.
func (l *Limiter) Apply(cfg Config) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	for name, c := range l.clusters {
		c.set(cfg.For(name))
	}
}

// Config returns the limits in force.
func (l *Limiter) Config() Config {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cfg
}

// For returns the cluster's limits and state, created on first use (the
// head-series count read from the head then), and starts a reconciliation
// of its head-series count in the background when one is due.
func (l *Limiter) For(ctx context.Context, cluster string) *Cluster {
	l.mu.RLock()
	c, ok := l.clusters[cluster]
	l.mu.RUnlock()
	if !ok {
		c = l.create(ctx, cluster)
	}
	if c.reconcileDue(l.opts.ReconcileInterval) && c.reconciling.CompareAndSwap(false, true) {
		go func() {
			defer c.reconciling.Store(false)
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			c.reconcile(ctx)
		}()
	}
	return c
}

func (l *Limiter) create(ctx context.Context, cluster string) *Cluster {
	l.mu.Lock()
	c, ok := l.clusters[cluster]
	if !ok {
		c = &Cluster{l: l, name: cluster}
		c.set(l.cfg.For(cluster))
		l.clusters[cluster] = c
	}
	l.mu.Unlock()
	if !ok && c.Limits().HeadSeries > 0 {
		c.reconcile(ctx)
	}
	return c
}

// Forget drops a cluster's state and its label values of
// fleetpulse_hub_ingest_limited_total (the cluster was deregistered); its
// next request, if any, starts afresh.
func (l *Limiter) Forget(cluster string) {
	l.mu.Lock()
	delete(l.clusters, cluster)
	l.mu.Unlock()
	l.limited.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}

// Cluster is one cluster's limits and state.
type Cluster struct {
	l      *Limiter
	name   string
	limits atomic.Pointer[Limits]
	bounds atomic.Pointer[Bounds]
	bucket *rate.Limiter // set before the cluster is shared

	headSeries   atomic.Int64
	reconciledAt atomic.Int64 // Unix nanoseconds; 0: never
	reconciling  atomic.Bool
}

// Bounds are a cluster's per-request limits for comparisons: no limit is
// math.MaxInt.
type Bounds struct {
	LabelNameLength, LabelValueLength, LabelsPerSeries     int
	SeriesPerRequest, SamplesPerRequest, DecompressedBytes int
}

func (c *Cluster) set(lim Limits) {
	c.limits.Store(&lim)
	orMax := func(v int) int {
		if v == 0 {
			return math.MaxInt
		}
		return v
	}
	b := Bounds{
		LabelNameLength: orMax(lim.LabelNameLength), LabelValueLength: orMax(lim.LabelValueLength),
		LabelsPerSeries: orMax(lim.LabelsPerSeries), SeriesPerRequest: orMax(lim.SeriesPerRequest),
		SamplesPerRequest: orMax(lim.SamplesPerRequest), DecompressedBytes: lim.DecompressedBytes,
	}
	if b.DecompressedBytes == 0 {
		b.DecompressedBytes = MaxDecompressedBytes
	}
	c.bounds.Store(&b)
	r := rate.Limit(lim.RequestRate)
	if lim.RequestRate == 0 {
		r = rate.Inf
	}
	if c.bucket == nil {
		// Full: a cluster's first requests are its burst.
		c.bucket = rate.NewLimiter(r, lim.RequestBurst)
		return
	}
	c.bucket.SetLimit(r)
	c.bucket.SetBurst(lim.RequestBurst)
}

// Name is the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Limits are the cluster's limits in force; not to be changed.
func (c *Cluster) Limits() *Limits { return c.limits.Load() }

// Bounds are the cluster's per-request limits in force; not to be changed.
func (c *Cluster) Bounds() *Bounds { return c.bounds.Load() }

// Refuse counts a refusal for the limit and returns it, saying what was
// over it.
func (c *Cluster) Refuse(limit, what string) *Refusal {
	lim := c.Limits()
	var v float64
	switch limit {
	case LabelNameLength:
		v = float64(lim.LabelNameLength)
	case LabelValueLength:
		v = float64(lim.LabelValueLength)
	case LabelsPerSeries:
		v = float64(lim.LabelsPerSeries)
	case SeriesPerRequest:
		v = float64(lim.SeriesPerRequest)
	case SamplesPerRequest:
		v = float64(lim.SamplesPerRequest)
	case DecompressedBytes:
		v = float64(c.Bounds().DecompressedBytes)
	case HeadSeries:
		v = float64(lim.HeadSeries)
	case RequestRate:
		v = lim.RequestRate
	}
	return c.refuse(limit, v, what)
}

// RefuseValue is Refuse for a limit that is not the cluster's own
// (RequestBytes), whose value the caller gives.
func (c *Cluster) RefuseValue(limit string, value float64, what string) *Refusal {
	return c.refuse(limit, value, what)
}

func (c *Cluster) refuse(limit string, value float64, what string) *Refusal {
	c.l.limited.WithLabelValues(c.name, limit).Inc()
	return &Refusal{Cluster: c.name, Limit: limit, Value: value, What: what, Status: statusOf[limit]}
}

// AllowRequest takes a token of the cluster's request bucket, or refuses.
func (c *Cluster) AllowRequest() *Refusal {
	if c.bucket.Allow() {
		return nil
	}
	return c.Refuse(RequestRate, "too many requests")
}

// RetryAfter is how long a refused request should wait: a second, as long
// as a token takes at 1 request/s and a rate any lower would not be set to
// refuse a flood.
func (c *Cluster) RetryAfter() time.Duration { return time.Second }

// HeadSeriesCount is the cluster's head-series count as the Limiter knows it.
func (c *Cluster) HeadSeriesCount() int { return int(c.headSeries.Load()) }

// MayCreate reports, without a lookup, that n new series would keep the
// cluster within its head-series limit: when it does not, the caller counts
// the request's new series and asks AllowCreate.
func (c *Cluster) MayCreate(n int) bool {
	limit := c.Limits().HeadSeries
	return limit == 0 || int(c.headSeries.Load())+n <= limit
}

// AllowCreate refuses n new series that would take the cluster past its
// head-series limit, reading the count from the head first if it is more
// than a few seconds old.
func (c *Cluster) AllowCreate(ctx context.Context, n int) *Refusal {
	if n == 0 || c.MayCreate(n) {
		return nil
	}
	if at := c.reconciledAt.Load(); c.l.opts.HeadSeries != nil && time.Since(time.Unix(0, at)) > refuseReconcileAfter {
		c.reconcile(ctx)
		if c.MayCreate(n) {
			return nil
		}
	}
	return c.Refuse(HeadSeries, fmt.Sprintf("the request would add %d series to the %d in the head", n, c.headSeries.Load()))
}

// Created counts n series the ingest path created.
func (c *Cluster) Created(n int) {
	if n > 0 {
		c.headSeries.Add(int64(n))
	}
}

func (c *Cluster) reconcileDue(interval time.Duration) bool {
	if c.l.opts.HeadSeries == nil || c.Limits().HeadSeries == 0 {
		return false
	}
	return time.Since(time.Unix(0, c.reconciledAt.Load())) > interval
}

// reconcile sets the count from the head. A failure (the shard is still
// opening) keeps the count and leaves the next request to try again.
func (c *Cluster) reconcile(ctx context.Context) {
	if c.l.opts.HeadSeries == nil {
		return
	}
	n, err := c.l.opts.HeadSeries(ctx, c.name)
	if err != nil {
		c.l.opts.Logger.Debug("cannot count the cluster's head series", "cluster", c.name, "err", err)
		return
	}
	c.headSeries.Store(int64(n))
	c.reconciledAt.Store(time.Now().UnixNano())
}
