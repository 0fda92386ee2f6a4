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

// FleetTenant holds series that name no cluster: fleet-wide recording rules
// and alerts. A cluster cannot be called this: cluster names are DNS labels,
// which never start with an underscore.
const FleetTenant = "_fleet"

// RoutingAppendable returns an Appendable for the hub's own writers (the
// rules manager): each series goes to the TSDB of the cluster its "cluster"
// label names, or to FleetTenant when it has none, so that recording-rule
// output and ALERTS read back with the cluster they were computed for.
func (s *Store) RoutingAppendable() storage.Appendable { return routingAppendable{s} }

type routingAppendable struct{ s *Store }

func (r routingAppendable) Appender(ctx context.Context) storage.Appender {
	return &routingAppender{ctx: ctx, s: r.s, tenants: map[string]storage.Appender{}}
}

// routingAppender opens one tenant appender per cluster on first use and
// commits or rolls back all of them together. Series references are tenant
// specific, so it neither takes nor returns them.
type routingAppender struct {
	ctx     context.Context
	s       *Store
	tenants map[string]storage.Appender
	opts    *storage.AppendOptions
}

func (r *routingAppender) route(l labels.Labels) (storage.Appender, error) {
	tenant := l.Get(ClusterLabel)
	if tenant == "" {
		tenant = FleetTenant
	}
	if app, ok := r.tenants[tenant]; ok {
		return app, nil
	}
	app, err := r.s.Appender(r.ctx, tenant)
	if err != nil {
		return nil, err
	}
	if r.opts != nil {
		app.SetOptions(r.opts)
	}
	r.tenants[tenant] = app
	return app, nil
}

func (r *routingAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.Append(0, l, t, v)
	return 0, err
}

func (r *routingAppender) AppendExemplar(_ storage.SeriesRef, l labels.Labels, e exemplar.Exemplar) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendExemplar(0, l, e)
	return 0, err
}

func (r *routingAppender) AppendHistogram(_ storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendHistogram(0, l, t, h, fh)
	return 0, err
}

func (r *routingAppender) AppendHistogramSTZeroSample(_ storage.SeriesRef, l labels.Labels, t, st int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendHistogramSTZeroSample(0, l, t, st, h, fh)
	return 0, err
}

func (r *routingAppender) UpdateMetadata(_ storage.SeriesRef, l labels.Labels, m metadata.Metadata) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.UpdateMetadata(0, l, m)
	return 0, err
}

func (r *routingAppender) AppendSTZeroSample(_ storage.SeriesRef, l labels.Labels, t, st int64) (storage.SeriesRef, error) {
	app, err := r.route(l)
	if err != nil {
		return 0, err
	}
	_, err = app.AppendSTZeroSample(0, l, t, st)
	return 0, err
}

func (r *routingAppender) SetOptions(o *storage.AppendOptions) {
	// The rules manager sets the same options before every sample it
	// appends: passing them on again to every tenant opened so far would
	// cost O(clusters) per sample, O(clusters²) per rule evaluation.
	if o == r.opts {
		return
	}
	r.opts = o
	for _, app := range r.tenants {
		app.SetOptions(o)
	}
}

func (r *routingAppender) Commit() error {
	var errs []error
	for tenant, app := range r.tenants {
		if err := app.Commit(); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", tenant, err))
		}
	}
	clear(r.tenants)
	return errors.Join(errs...)
}

func (r *routingAppender) Rollback() error {
	var errs []error
	for tenant, app := range r.tenants {
		if err := app.Rollback(); err != nil {
			errs = append(errs, fmt.Errorf("tenant %q: %w", tenant, err))
		}
	}
	clear(r.tenants)
	return errors.Join(errs...)
}
