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

// MaxAhead is how far ahead of the clock a series' sample may be written.
// Samples of one series need distinct, increasing timestamps, so a series
// counted more often than once a millisecond is written a millisecond after
// its last sample; past MaxAhead the request is refused (TooFastError)
// rather than let the cluster's shard TSDB run ahead of the clock, where
// every other cluster's samples would look too old.
const MaxAhead = time.Second

// Appenders opens an appender for a cluster's series; the metric store is one.
type Appenders interface {
	Appender(ctx context.Context, cluster string) (storage.Appender, error)
}

// TooFastError refuses a request that would write a series' sample more
// than MaxAhead ahead of the clock.
type TooFastError struct{ Cluster string }

func (e *TooFastError) Error() string {
	return fmt.Sprintf("count events of %q: one series counted more than once a millisecond for longer than %s (samples may run at most %s ahead of the clock); retry later", e.Cluster, MaxAhead, MaxAhead)
}

// SeriesRecorder counts events into fleetpulse_events_total{reason,type,kind}
// in the TSDB of the cluster that sent them (which adds the cluster label).
// Totals start at zero when the hub starts; PromQL's rate and increase read
// that as a counter reset. Reason, type and kind are folded into bounded
// sets (see vocabulary.go) by the store that decoded the events.
type SeriesRecorder struct {
	dbs Appenders
	now func() time.Time

	mu       sync.Mutex
	clusters map[string]*clusterSeries
}

// clusterSeries is one cluster's counters. Its lock is held across the
// TSDB append, so one cluster's requests are counted one at a time while
// other clusters' go on.
type clusterSeries struct {
	mu     sync.Mutex
	series map[metricLabels]*counter
}

type counter struct {
	total  float64
	lastMS int64
}

// NewSeriesRecorder returns a recorder writing through dbs.
func NewSeriesRecorder(dbs Appenders) *SeriesRecorder {
	return &SeriesRecorder{dbs: dbs, now: time.Now, clusters: map[string]*clusterSeries{}}
}

// Forget drops a cluster's totals; the hub calls it when the cluster is
// deregistered. Should the cluster come back, its counters restart at zero.
func (r *SeriesRecorder) Forget(cluster string) {
	r.mu.Lock()
	delete(r.clusters, cluster)
	r.mu.Unlock()
}

func (r *SeriesRecorder) cluster(name string) *clusterSeries {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.clusters[name]
	if cs == nil {
		cs = &clusterSeries{series: map[metricLabels]*counter{}}
		r.clusters[name] = cs
	}
	return cs
}

// Record adds evs (all of one cluster) to the totals and appends one sample
// per touched series at the hub's current time. On error nothing is counted,
// so the caller can refuse the request and the agent resend it.
func (r *SeriesRecorder) Record(ctx context.Context, cluster string, evs []Event) error {
	if len(evs) == 0 {
		return nil
	}
	added := map[metricLabels]float64{}
	for i := range evs {
		l := evs[i].labels
		if l == (metricLabels{}) {
			l = defaultVocabulary.labels(&evs[i])
		}
		added[l]++
	}
	cs := r.cluster(cluster)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	now := r.now().UnixMilli()
	stamps := make(map[metricLabels]int64, len(added))
	for k := range added {
		ts := now
		if c := cs.series[k]; c != nil && c.lastMS >= ts {
			ts = c.lastMS + 1
		}
		if ts > now+MaxAhead.Milliseconds() {
			return &TooFastError{Cluster: cluster}
		}
		stamps[k] = ts
	}
	app, err := r.dbs.Appender(ctx, cluster)
	if err != nil {
		return fmt.Errorf("count events of %q: %w", cluster, err)
	}
	for k, n := range added {
		l := labels.FromStrings(model.MetricNameLabel, SeriesName, "reason", k.reason, "type", k.typ, "kind", k.kind)
		ts := stamps[k]
		c := cs.series[k]
		prev := 0.0
		if c == nil {
			// A zero just before the first value lets increase() count the
			// first burst of a new series instead of taking it as the base.
			if _, err := app.Append(0, l, ts-1, 0); err != nil {
				_ = app.Rollback()
				return fmt.Errorf("count events of %q: %w", cluster, err)
			}
		} else {
			prev = c.total
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
		c := cs.series[k]
		if c == nil {
			c = &counter{}
			cs.series[k] = c
		}
		c.total += n
		c.lastMS = stamps[k]
	}
	return nil
}
