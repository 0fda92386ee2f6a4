package events

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// SeriesName is the counter the hub keeps for every cluster in its store, so that
// rules and dashboards can rate events like any metric.
const SeriesName = "fleetpulse_events_total"

// Appenders opens an appender for a cluster's series; the metric store is one.
type Appenders interface {
	Appender(ctx context.Context, cluster string) (storage.Appender, error)
}

type seriesKey struct{ cluster, reason, typ, kind string }

// SeriesRecorder counts events into fleetpulse_events_total{reason,type,kind}
// in the TSDB of the cluster that sent them (which adds the cluster label).
// Totals start at zero when the hub starts; PromQL's rate and increase read
// that as a counter reset.
type SeriesRecorder struct {
	dbs Appenders
	now func() time.Time

	mu     sync.Mutex
	totals map[seriesKey]float64
	lastMS int64
}

// NewSeriesRecorder returns a recorder writing through dbs.
func NewSeriesRecorder(dbs Appenders) *SeriesRecorder {
	return &SeriesRecorder{dbs: dbs, now: time.Now, totals: map[seriesKey]float64{}}
}

// Record adds evs (all of one cluster) to the totals and appends one sample
// per touched series at the hub's current time. On error nothing is counted,
// so the caller can refuse the request and the agent resend it.
func (r *SeriesRecorder) Record(ctx context.Context, cluster string, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	added := map[seriesKey]float64{}
	for _, ev := range evs {
		added[seriesKey{cluster, ev.Reason, ev.Type, ev.Kind}]++
	}
	app, err := r.dbs.Appender(ctx, cluster)
	if err != nil {
		return fmt.Errorf("count events of %q: %w", cluster, err)
	}
	// Samples of one series need distinct timestamps even when requests
	// arrive within the same millisecond.
	ts := max(r.now().UnixMilli(), r.lastMS+2)
	for k, n := range added {
		l := labels.FromStrings(model.MetricNameLabel, SeriesName, "reason", k.reason, "type", k.typ, "kind", k.kind)
		prev, seen := r.totals[k]
		if !seen {
			// A zero just before the first value lets increase() count the
			// first burst of a new series instead of taking it as the base.
			if _, err := app.Append(0, l, ts-1, 0); err != nil {
				_ = app.Rollback()
				return fmt.Errorf("count events of %q: %w", cluster, err)
			}
		}
		if _, err := app.Append(0, l, ts, prev+n); err != nil {
			_ = app.Rollback()
			return fmt.Errorf("count events of %q: %w", cluster, err)
		}
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("count events of %q: %w", cluster, err)
	}
	for k, n := range added {
		r.totals[k] += n
	}
	r.lastMS = ts
	return nil
}
