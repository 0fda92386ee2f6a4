package metricstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// RoutingAppendable returns an Appendable for the hub's own writers (the
// rules manager): each series is stored as it is given (but for a shard
// label, which reads drop), in the shard of the
// cluster its "cluster" label names (a series naming none in the shard of
// the empty name), beside that cluster's own series.
func (s *Store) RoutingAppendable() storage.Appendable { return routingAppendable{s} }

type routingAppendable struct{ s *Store }

func (r routingAppendable) Appender(ctx context.Context) storage.Appender {
	return &routingAppender{ctx: ctx, s: r.s, shards: map[int]storage.Appender{}}
}

// routingAppender opens one appender per shard on first use and commits or
// rolls back all of them together. Series references are shard specific,
// so it neither takes nor returns them.
type routingAppender struct {
	ctx    context.Context
	s      *Store
	shards map[int]storage.Appender
	opts   *storage.AppendOptions
	// meta holds the metadata given, by cluster, until the appender
	// commits.
	meta map[string]*pendingMetadata
}

func (r *routingAppender) route(l labels.Labels) (storage.Appender, error) {
	shard := shardOf(l.Get(ClusterLabel), len(r.s.shards))
	if app, ok := r.shards[shard]; ok {
		return app, nil
	}
	app, err := r.s.shardAppender(r.ctx, shard)
	if err != nil {
		return nil, err
	}
	if r.opts != nil {
		app.SetOptions(r.opts)
	}
	r.shards[shard] = app
	return app, nil
}

func (r *routingAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.Append(0, withoutShard(l), t, v)
	return 0, err
}

func (r *routingAppender) AppendExemplar(_ storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendExemplar(0, withoutShard(l), e)
	return 0, err
}

func (r *routingAppender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendHistogram(0, withoutShard(l), t, h, fh)
	return 0, err
}

func (r *routingAppender) AppendHistogramSTZeroSample(_ storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendHistogramSTZeroSample(0, withoutShard(l), t, st, h, fh)
	return 0, err
}

// UpdateMetadata keeps the metadata of l's metric family for the cluster
// its "cluster" label names (WithMetadata), once the appender commits, as
// a cluster's own appender does.
func (r *routingAppender) UpdateMetadata(_ storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	if r.s.meta == nil {
		return 0, nil
	}
	cluster := l.Get(ClusterLabel)
	p := r.meta[cluster]
	if p == nil {
		if r.meta == nil {
			r.meta = map[string]*pendingMetadata{}
		}
		p = &pendingMetadata{store: r.s.meta}
		r.meta[cluster] = p
	}
	p.add(l, m)
	return 0, nil
}

func (r *routingAppender) AppendSTZeroSample(_ storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendSTZeroSample(0, withoutShard(l), t, st)
	return 0, err
}

func (r *routingAppender) SetOptions(o *storage.AppendOptions) {
	// The rules manager sets the same options before every sample it
	// appends: passing them on again to every shard opened so far would
	// cost O(shards) per sample.
	if o == r.opts {
		return
	}
	r.opts = o
	for _, app := range r.shards {
		app.SetOptions(o)
	}
}

func (r *routingAppender) Commit() error {
	var errs []error
	for shard, app := range r.shards {
		if err := app.Commit(); err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", shardName(shard), err))
		}
	}
	clear(r.shards)
	if len(errs) == 0 {
		for cluster, p := range r.meta {
			p.commit(cluster)
		}
	}
	for _, p := range r.meta {
		p.reset()
	}
	clear(r.meta)
	return errors.Join(errs...)
}

func (r *routingAppender) Rollback() error {
	for _, p := range r.meta {
		p.reset()
	}
	clear(r.meta)
	var errs []error
	for shard, app := range r.shards {
		if err := app.Rollback(); err != nil {
			errs = append(errs, fmt.Errorf("shard %s: %w", shardName(shard), err))
		}
	}
	clear(r.shards)
	return errors.Join(errs...)
}
