package fleetsim

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Fleet is a simulated fleet. New builds it; Register joins every cluster
// to the hub; Run keeps them heartbeating and writing until its context
// ends; Lose takes clusters away while Run goes on.
type Fleet struct {
	cfg    Config
	base   string
	log    *slog.Logger
	dialer *net.Dialer
	anon   *http.Client // registration: no client certificate
	// redirected: a replica has answered 307, so the hub's address is
	// several replicas behind one name.
	redirected atomic.Bool
	clusters   []*cluster
	stats      counters
	policy     policyCounters
	work       workCounters
}

type counters struct {
	registered                                         atomic.Int64
	registerRequests, registerRetries, registerPending atomic.Int64
	heartbeats, heartbeatErrors                        atomic.Int64
	writes, writeErrors, samples                       atomic.Int64
	heartbeatLatency, writeLatency, lateness           durations
}

// New builds a fleet; it calls nothing.
func New(cfg Config) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid fleet simulator configuration: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Fleet{cfg: cfg, base: strings.TrimSuffix(cfg.Hub, "/"), log: cfg.Logger, dialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}}
	f.anon = &http.Client{Timeout: cfg.RequestTimeout, Transport: &http.Transport{
		DialContext:         f.dialer.DialContext,
		TLSClientConfig:     &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        cfg.RegisterConcurrency,
		MaxIdleConnsPerHost: cfg.RegisterConcurrency,
		DisableCompression:  true,
	}}
	f.clusters = make([]*cluster, cfg.Clusters)
	for i := range f.clusters {
		name := fmt.Sprintf("%s-%d", cfg.Prefix, i)
		c := &cluster{name: name, idx: i, id: fmt.Sprintf("%08x-0000-4000-8000-%012x", rand.Uint32(), i), inv: inventory(name, i)}
		c.period.Store(int64(cfg.HeartbeatPeriod))
		f.clusters[i] = c
	}
	return f, nil
}

// Names are the clusters' names, in order.
func (f *Fleet) Names() []string {
	out := make([]string, len(f.clusters))
	for i, c := range f.clusters {
		out[i] = c.name
	}
	return out
}

// RegisterResult is how registration went.
type RegisterResult struct {
	// Start is when the first registration request went out, End when the
	// last cluster held its certificate.
	Start, End time.Time
	// Registered clusters; Requests sent (retries and polls included).
	Registered int
	Requests   int64
}

// Rate is registrations per second from the first request to the last
// certificate.
func (r RegisterResult) Rate() float64 {
	if d := r.End.Sub(r.Start).Seconds(); d > 0 {
		return float64(r.Registered) / d
	}
	return 0
}

// Register registers every cluster, RegisterConcurrency at a time, each
// polling until the hub accepts it. It returns when all hold certificates,
// or with the errors of those refused.
func (f *Fleet) Register(ctx context.Context) (RegisterResult, error) {
	next := make(chan *cluster)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		done     int
		lastDone time.Time
	)
	before := f.stats.registerRequests.Load()
	res := RegisterResult{Start: time.Now()}
	for range f.cfg.RegisterConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				err := f.register(ctx, c)
				now := time.Now()
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					done++
					lastDone = now
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, c := range f.clusters {
		select {
		case next <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	res.End, res.Registered, res.Requests = lastDone, done, f.stats.registerRequests.Load()-before
	if len(errs) > 0 {
		if len(errs) > 5 {
			errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
		}
		return res, fmt.Errorf("%d of %d clusters not registered: %w", f.cfg.Clusters-done, f.cfg.Clusters, errors.Join(errs...))
	}
	return res, ctx.Err()
}

// call kinds of the scheduler.
const (
	callHeartbeat = iota
	callWrite
)

type call struct {
	at   time.Time
	c    *cluster
	kind int
	// retry counts the failed attempts of a call that is repeated; a
	// repeated call is not rescheduled, its periodic one goes on.
	retry int
}

type calls []call

func (h calls) Len() int           { return len(h) }
func (h calls) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h calls) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *calls) Push(x any)        { *h = append(*h, x.(call)) }
func (h *calls) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// Run heartbeats and writes for every registered cluster until ctx ends.
// Each cluster's first heartbeat and first write fall at a random point of
// its first period and interval, as agents that joined at different times
// would send them; after that they keep their schedule (a call that is due
// while the cluster's previous one is still out waits for it).
func (f *Fleet) Run(ctx context.Context) {
	now := time.Now()
	h := make(calls, 0, 2*len(f.clusters))
	for _, c := range f.clusters {
		if c.client == nil {
			continue
		}
		h = append(h,
			call{at: now.Add(rand.N(c.heartbeatPeriod())), c: c, kind: callHeartbeat},
			call{at: now.Add(rand.N(f.cfg.CollectionInterval)), c: c, kind: callWrite})
	}
	heap.Init(&h)
	retries := make(chan call, len(f.clusters))
	jobs := make(chan call, f.cfg.Workers)
	var wg sync.WaitGroup
	for range f.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if r, ok := f.do(ctx, j); ok {
					select {
					case retries <- r:
					default: // the periodic call will do
					}
				}
			}
		}()
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-retries:
			heap.Push(&h, r)
		case <-timer.C:
		}
		now := time.Now()
		for len(h) > 0 && !h[0].at.After(now) {
			j := heap.Pop(&h).(call)
			if j.c.lost.Load() {
				continue
			}
			if j.retry > 0 {
				select {
				case jobs <- j:
				case <-ctx.Done():
					return
				}
				continue
			}
			every := f.cfg.CollectionInterval
			if j.kind == callHeartbeat {
				every = j.c.heartbeatPeriod()
			}
			next := j
			if next.at = j.at.Add(every); next.at.Before(now) {
				next.at = now.Add(every) // far behind: do not pile calls up
			}
			heap.Push(&h, next)
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if len(h) > 0 {
			timer.Reset(time.Until(h[0].at))
		}
	}
}

// do makes one call. A call that failed for a reason the agent waits out
// (no connection, 429, 5xx) is returned to be repeated after the hub's
// Retry-After or a doubling backoff from one second, shorter than the
// period, as the agent's heartbeats and its exporter's queue repeat theirs.
func (f *Fleet) do(ctx context.Context, j call) (call, bool) {
	c := j.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lost.Load() || ctx.Err() != nil {
		return call{}, false
	}
	if j.retry == 0 {
		f.stats.lateness.add(time.Since(j.at))
	}
	var err error
	every := f.cfg.CollectionInterval
	switch j.kind {
	case callHeartbeat:
		f.stats.heartbeats.Add(1)
		every = c.heartbeatPeriod()
		if err = f.heartbeat(ctx, c); err != nil && ctx.Err() == nil {
			f.stats.heartbeatErrors.Add(1)
			f.warn(&f.stats.heartbeatErrors, "heartbeat failed", "cluster", c.name, "err", err)
		}
	case callWrite:
		f.stats.writes.Add(1)
		if err = f.write(ctx, c); err != nil && ctx.Err() == nil {
			f.stats.writeErrors.Add(1)
			f.warn(&f.stats.writeErrors, "remote write failed", "cluster", c.name, "err", err)
		}
	}
	if err == nil || ctx.Err() != nil || !retryable(err) {
		return call{}, false
	}
	wait := time.Second << min(j.retry, 6)
	var se *statusError
	if errors.As(err, &se) && se.retryAfter > 0 {
		wait = se.retryAfter
	}
	if wait >= every {
		return call{}, false // the periodic call comes first
	}
	return call{at: time.Now().Add(wait), c: c, kind: j.kind, retry: j.retry + 1}, true
}

// Landing is where a cluster's last acknowledged heartbeat and write were
// answered (the host after redirects) and when the answers came.
type Landing struct {
	HeartbeatHost string
	HeartbeatAt   time.Time
	WriteHost     string
	WriteAt       time.Time
}

// Landings returns each registered cluster's Landing.
func (f *Fleet) Landings() map[string]Landing {
	out := make(map[string]Landing, len(f.clusters))
	for _, c := range f.clusters {
		var l Landing
		if b := c.beat.Load(); b != nil {
			l.HeartbeatHost, l.HeartbeatAt = b.host, b.at
		}
		if w := c.written.Load(); w != nil {
			l.WriteHost, l.WriteAt = w.host, w.at
		}
		out[c.name] = l
	}
	return out
}

// warn logs the first ten failures of a kind, then every thousandth.
func (f *Fleet) warn(count *atomic.Int64, msg string, args ...any) {
	if n := count.Load(); n <= 10 || n%1000 == 0 {
		f.log.Warn(msg, append(args, "failures", n)...)
	}
}

// FirstHeartbeats returns when each cluster sent its first acknowledged
// heartbeat, for those that have had one.
func (f *Fleet) FirstHeartbeats() map[string]time.Time {
	out := make(map[string]time.Time, len(f.clusters))
	for _, c := range f.clusters {
		if ns := c.firstBeat.Load(); ns != 0 {
			out[c.name] = time.Unix(0, ns)
		}
	}
	return out
}

// AckedWrites returns, for each cluster, the timestamps (milliseconds) of
// the writes the hub acknowledged, in order: every series of the cluster's
// inventory has a sample at each. Empty without Config.RecordWrites.
func (f *Fleet) AckedWrites() map[string][]int64 {
	out := make(map[string][]int64, len(f.clusters))
	for _, c := range f.clusters {
		c.mu.Lock()
		if len(c.acked) > 0 {
			out[c.name] = slices.Clone(c.acked)
		}
		c.mu.Unlock()
	}
	return out
}

// Lost is a cluster taken away by Lose.
type Lost struct {
	Name string
	// LastHeartbeat is when its last acknowledged heartbeat was sent; zero
	// if it never had one acknowledged.
	LastHeartbeat time.Time
}

// Lose takes n random registered clusters away: they call the hub no more
// and drop their connections, as clusters that lost power would. It waits
// for calls they have in flight, so LastHeartbeat is final.
func (f *Fleet) Lose(n int) []Lost {
	var live []*cluster
	for _, c := range f.clusters {
		if c.client != nil && !c.lost.Load() {
			live = append(live, c)
		}
	}
	rand.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
	out := make([]Lost, 0, min(n, len(live)))
	for _, c := range live[:min(n, len(live))] {
		c.lost.Store(true)
		c.mu.Lock()
		l := Lost{Name: c.name}
		if ns := c.lastBeat.Load(); ns != 0 {
			l.LastHeartbeat = time.Unix(0, ns)
		}
		c.client.CloseIdleConnections()
		c.mu.Unlock()
		out = append(out, l)
	}
	return out
}

// Close drops every connection.
func (f *Fleet) Close() {
	f.anon.CloseIdleConnections()
	for _, c := range f.clusters {
		c.mu.Lock()
		if c.client != nil {
			c.client.CloseIdleConnections()
		}
		c.mu.Unlock()
	}
}

// Stats are the fleet's counts so far.
type Stats struct {
	Registered                                         int64
	RegisterRequests, RegisterRetries, RegisterPending int64
	Heartbeats, HeartbeatErrors                        int64
	Writes, WriteErrors, Samples                       int64
	// HeartbeatLatency and WriteLatency are the hub's answer times;
	// Lateness is how long due calls waited for a worker and for the
	// cluster's previous call: large values mean the simulator, not the
	// hub, delayed heartbeats.
	HeartbeatLatency, WriteLatency, Lateness Percentiles
}

// Registered is how many clusters hold certificates so far.
func (f *Fleet) Registered() int64 { return f.stats.registered.Load() }

// Stats returns the counts so far.
func (f *Fleet) Stats() Stats {
	s := &f.stats
	return Stats{
		Registered: s.registered.Load(), RegisterRequests: s.registerRequests.Load(), RegisterRetries: s.registerRetries.Load(), RegisterPending: s.registerPending.Load(),
		Heartbeats: s.heartbeats.Load(), HeartbeatErrors: s.heartbeatErrors.Load(),
		Writes: s.writes.Load(), WriteErrors: s.writeErrors.Load(), Samples: s.samples.Load(),
		HeartbeatLatency: s.heartbeatLatency.percentiles(), WriteLatency: s.writeLatency.percentiles(), Lateness: s.lateness.percentiles(),
	}
}

// Percentiles of a set of durations.
type Percentiles struct {
	N             int
	P50, P99, Max time.Duration
}

func (p Percentiles) String() string {
	return fmt.Sprintf("n=%d p50=%s p99=%s max=%s", p.N, p.P50.Round(10*time.Microsecond), p.P99.Round(10*time.Microsecond), p.Max.Round(10*time.Microsecond))
}

// Percentile is the q-th percentile (0 < q ≤ 100) of sorted durations, by
// the nearest-rank method.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(q/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// durations keeps the most recent observations (a bounded ring).
type durations struct {
	mu   sync.Mutex
	ring []time.Duration
	next int
}

const ringSize = 1 << 18

func (d *durations) add(v time.Duration) {
	d.mu.Lock()
	if len(d.ring) < ringSize {
		d.ring = append(d.ring, v)
	} else {
		d.ring[d.next] = v
		d.next = (d.next + 1) % ringSize
	}
	d.mu.Unlock()
}

func (d *durations) percentiles() Percentiles {
	d.mu.Lock()
	s := slices.Clone(d.ring)
	d.mu.Unlock()
	slices.Sort(s)
	if len(s) == 0 {
		return Percentiles{}
	}
	return Percentiles{N: len(s), P50: Percentile(s, 50), P99: Percentile(s, 99), Max: s[len(s)-1]}
}

// ResetLatencies forgets the latencies and lateness observed so far, so that
// Stats describes a window (steady state after registration).
func (f *Fleet) ResetLatencies() {
	for _, d := range []*durations{&f.stats.heartbeatLatency, &f.stats.writeLatency, &f.stats.lateness} {
		d.mu.Lock()
		d.ring, d.next = d.ring[:0], 0
		d.mu.Unlock()
	}
}
