package alerting

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// Option configures Alerting beyond its Config.
type Option func(*options)

type options struct {
	part  *partition
	peers func(context.Context) ([]Alert, error)
}

// WithPartition makes this replica one of several that share the rules
// over one fleet. A group whose every rule computes per cluster (see
// PerCluster) is evaluated by each replica over the clusters it owns:
// it reads only their series and writes and sends only their results. A
// group that mixes clusters is evaluated by the replica that leads. Each
// result series is so written, and each alert sent, by its cluster's
// owners only (several where a cluster is replicated, which Alertmanager
// and the readers' deduplication fold into one), and the fleet's rule
// work is split over the replicas. Series without a cluster label belong
// to the leader.
func WithPartition(cluster string, owns func(cluster string) bool, leads func() bool) Option {
	return func(o *options) { o.part = &partition{cluster: cluster, owns: owns, leads: leads} }
}

// WithPeerAlerts adds the alerts the other replicas evaluate to Active.
func WithPeerAlerts(peers func(context.Context) ([]Alert, error)) Option {
	return func(o *options) { o.peers = peers }
}

// partition decides what this replica reads, writes and sends.
type partition struct {
	cluster string
	owns    func(string) bool
	leads   func() bool

	mu         sync.Mutex
	perCluster map[*rules.Group]bool
}

// scope is what a group evaluation reads, writes and sends, carried by
// its context from the iteration function to the querier, the appender
// and the notifier.
type scope int

const (
	scopeOwned  scope = iota + 1 // a per-cluster group: the owned clusters
	scopeLeader                  // a fleet-wide group, evaluated by the leader
)

type scopeKey struct{}

// evalScope is a group evaluation's scope, with the owner decisions it
// has made: its Selects, results and alerts ask the membership once per
// cluster.
type evalScope struct {
	scope scope
	p     *partition

	mu    sync.Mutex
	owned map[string]bool
}

func (e *evalScope) owns(cluster string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	own, ok := e.owned[cluster]
	if !ok {
		own = e.p.owns(cluster)
		e.owned[cluster] = own
	}
	return own
}

func (p *partition) withScope(ctx context.Context, s scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, &evalScope{scope: s, p: p, owned: map[string]bool{}})
}

// scopeOf is ctx's evaluation scope; nil outside an evaluation.
func scopeOf(ctx context.Context) *evalScope {
	s, _ := ctx.Value(scopeKey{}).(*evalScope)
	return s
}

// keepIn tells whether this replica writes or sends a result with labels
// l, or reads a series: within a fleet-wide group's evaluation, while it
// leads, whatever the labels; else one of its clusters', or, without a
// cluster label, while it leads.
func (p *partition) keepIn(ctx context.Context, l labels.Labels) bool {
	e := scopeOf(ctx)
	if e != nil && e.scope == scopeLeader {
		return p.leads()
	}
	c := l.Get(p.cluster)
	switch {
	case c == "":
		return p.leads()
	case e != nil:
		return e.owns(c)
	default:
		return p.owns(c)
	}
}

// groupScope is the scope g evaluates in.
func (p *partition) groupScope(g *rules.Group) scope {
	p.mu.Lock()
	defer p.mu.Unlock()
	per, ok := p.perCluster[g]
	if !ok {
		per = perClusterGroup(g, p.cluster)
		if p.perCluster == nil {
			p.perCluster = map[*rules.Group]bool{}
		}
		p.perCluster[g] = per
	}
	if per {
		return scopeOwned
	}
	return scopeLeader
}

// evaluates tells whether this replica evaluates g now.
func (p *partition) evaluates(g *rules.Group) bool {
	return p.groupScope(g) == scopeOwned || p.leads()
}

// forget drops the groups a reload replaced.
func (p *partition) forget() {
	p.mu.Lock()
	p.perCluster = nil
	p.mu.Unlock()
}

// notify sends only the alerts this replica sends.
func (p *partition) notify(next rules.NotifyFunc) rules.NotifyFunc {
	return func(ctx context.Context, expr string, alerts ...*rules.Alert) {
		kept := alerts[:0:0]
		for _, a := range alerts {
			if p.keepIn(ctx, a.Labels) {
				kept = append(kept, a)
			}
		}
		if len(kept) > 0 {
			next(ctx, expr, kept...)
		}
	}
}

// ownedQueryable reads, within a per-cluster group's evaluation, only the
// series of the clusters this replica owns.
type ownedQueryable struct {
	storage.Queryable
	p *partition
}

func (q ownedQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	in, err := q.Queryable.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return ownedQuerier{Querier: in, p: q.p}, nil
}

type ownedQuerier struct {
	storage.Querier
	p *partition
}

func (q ownedQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	set := q.Querier.Select(ctx, sortSeries, hints, matchers...)
	if e := scopeOf(ctx); e != nil && e.scope == scopeOwned {
		return &ownedSeries{SeriesSet: set, ctx: ctx, p: q.p}
	}
	return set
}

// ownedSeries skips the series of clusters owned elsewhere.
type ownedSeries struct {
	storage.SeriesSet
	ctx context.Context
	p   *partition
}

func (s *ownedSeries) Next() bool {
	for s.SeriesSet.Next() {
		if s.p.keepIn(s.ctx, s.SeriesSet.At().Labels()) {
			return true
		}
	}
	return false
}

// partitionedAppendable writes only the series this replica writes; the
// others are dropped as if written.
type partitionedAppendable struct {
	storage.Appendable
	p *partition
}

func (a partitionedAppendable) Appender(ctx context.Context) storage.Appender {
	p := a.p
	return partitionedAppender{Appender: a.Appendable.Appender(ctx), keep: func(l labels.Labels) bool { return p.keepIn(ctx, l) }}
}

type partitionedAppender struct {
	storage.Appender
	keep func(labels.Labels) bool
}

func (p partitionedAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.Append(ref, l, t, v)
}

func (p partitionedAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendHistogram(ref, l, t, h, fh)
}

func (p partitionedAppender) AppendExemplar(ref storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendExemplar(ref, l, e)
}

func (p partitionedAppender) UpdateMetadata(ref storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.UpdateMetadata(ref, l, m)
}

func (p partitionedAppender) AppendSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendSTZeroSample(ref, l, t, st)
}

func (p partitionedAppender) AppendHistogramSTZeroSample(ref storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	if !p.keep(l) {
		return 0, nil
	}
	return p.Appender.AppendHistogramSTZeroSample(ref, l, t, st, h, fh)
}

// takeOverWindow is how recent, in evaluation intervals, the last 'for'
// state another replica wrote for an alert must be for this replica to
// carry it on: the alert was active there moments ago.
const takeOverWindow = 3

// activeAlerts are the labels' hashes of every active alert of g's
// alerting rules.
func activeAlerts(g *rules.Group) map[*rules.AlertingRule]map[uint64]struct{} {
	out := map[*rules.AlertingRule]map[uint64]struct{}{}
	for _, r := range g.Rules() {
		ar, ok := r.(*rules.AlertingRule)
		if !ok || ar.HoldDuration() <= 0 {
			continue
		}
		seen := map[uint64]struct{}{}
		ar.ForEachActiveAlert(func(a *rules.Alert) { seen[a.Labels.Hash()] = struct{}{} })
		out[ar] = seen
	}
	return out
}

// carryOn gives the alerts that g's evaluation at ts started, and that
// another replica was evaluating moments ago (a cluster that moved here,
// the leadership of the fleet-wide groups), the time they became active
// there, from their ALERTS_FOR_STATE series, so that a pending alert does
// not start its "for" over, nor a firing one stop firing, when its
// cluster changes owner.
func carryOn(ctx context.Context, g *rules.Group, ts time.Time, q storage.Queryable, before map[*rules.AlertingRule]map[uint64]struct{}) error {
	mint := ts.Add(-takeOverWindow * g.Interval())
	evaluated := ts.Add(-g.QueryOffset()).UnixMilli()
	querier, err := q.Querier(mint.UnixMilli(), ts.UnixMilli())
	if err != nil {
		return err
	}
	defer querier.Close()
	for ar, seen := range before {
		started := map[uint64]bool{}
		ar.ForEachActiveAlert(func(a *rules.Alert) {
			if _, ok := seen[a.Labels.Hash()]; !ok {
				started[a.Labels.Hash()] = true
			}
		})
		if len(started) == 0 {
			continue
		}
		set, err := ar.QueryForStateSeries(ctx, querier)
		if err != nil {
			return err
		}
		activeAt := map[uint64]time.Time{}
		for set.Next() {
			s := set.At()
			// The last state before this evaluation, which has just
			// written the alert's own, new, one.
			var t int64
			var v float64
			it := s.Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				st, sv := it.At()
				if st >= evaluated {
					break
				}
				t, v = st, sv
			}
			if it.Err() != nil || t == 0 || value.IsStaleNaN(v) {
				continue
			}
			l := s.Labels().DropReserved(func(n string) bool { return n == model.MetricNameLabel })
			if h := l.Hash(); started[h] {
				activeAt[h] = time.Unix(int64(v), 0)
			}
		}
		if err := set.Err(); err != nil {
			return err
		}
		ar.ForEachActiveAlert(func(a *rules.Alert) {
			if at, ok := activeAt[a.Labels.Hash()]; ok && at.Before(a.ActiveAt) {
				a.ActiveAt = at
			}
		})
	}
	return nil
}
