package selfmetrics

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/stretchr/testify/require"
)

// TestWriteChosenSeries writes a registry's rollout series into a real
// TSDB and reads them back with PromQL: gauges, counters and histograms
// under their exposition names, other metrics left out, and a series that
// left the registry marked stale, so PromQL stops seeing it at once.
func TestWriteChosenSeries(t *testing.T) {
	db := teststorage.New(t)
	t.Cleanup(func() { _ = db.Close() })
	reg := prometheus.NewRegistry()
	phase := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "fleetpulse_hub_rollout_phase"}, []string{"name", "phase"})
	measured := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fleetpulse_hub_rollout_gate_measurements_total"}, []string{"outcome"})
	took := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "fleetpulse_hub_rollout_reconcile_duration_seconds", Buckets: []float64{0.1, 1}})
	other := prometheus.NewGauge(prometheus.GaugeOpts{Name: "fleetpulse_hub_other"})
	reg.MustRegister(phase, measured, took, other)
	phase.WithLabelValues("web", "Progressing").Set(1)
	phase.WithLabelValues("db", "Succeeded").Set(1)
	measured.WithLabelValues("failed").Add(3)
	took.Observe(0.5)
	other.Set(7)

	w, err := New(Config{Interval: time.Second, Prefixes: []string{"fleetpulse_hub_rollout_"}}, reg, db, nil)
	require.NoError(t, err)
	now := time.Unix(1_800_000_000, 0)
	w.now = func() time.Time { return now }
	require.NoError(t, w.Write(context.Background()))

	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute})
	instant := func(expr string, at time.Time) promql.Vector {
		t.Helper()
		q, err := engine.NewInstantQuery(context.Background(), db, nil, expr, at)
		require.NoError(t, err)
		defer q.Close()
		v, err := q.Exec(context.Background()).Vector()
		require.NoError(t, err, expr)
		return v
	}
	for expr, want := range map[string]float64{
		`fleetpulse_hub_rollout_phase{name="web",phase="Progressing"}`:                  1,
		`fleetpulse_hub_rollout_gate_measurements_total{outcome="failed"}`:              3,
		`fleetpulse_hub_rollout_reconcile_duration_seconds_bucket{le="1"}`:              1,
		`fleetpulse_hub_rollout_reconcile_duration_seconds_bucket{le="0.1"}`:            0,
		`fleetpulse_hub_rollout_reconcile_duration_seconds_bucket{le="+Inf"}`:           1,
		`fleetpulse_hub_rollout_reconcile_duration_seconds_sum`:                         0.5,
		`count({__name__=~"fleetpulse_hub_rollout_reconcile_duration_seconds_bucket"})`: 3,
	} {
		v := instant(expr, now)
		if len(v) != 1 || v[0].F != want {
			t.Errorf("%s = %v, want %v", expr, v, want)
		}
	}
	if v := instant(`fleetpulse_hub_other`, now); len(v) != 0 {
		t.Errorf("a metric without the prefix was written: %v", v)
	}
	if v := instant(`fleetpulse_hub_rollout_phase`, now); len(v) != 2 || v[0].Metric.Has("cluster") {
		t.Errorf("phase series %v, want two, without a cluster label", v)
	}

	// The db rollout goes: its series is marked stale, PromQL drops it.
	phase.DeleteLabelValues("db", "Succeeded")
	now = now.Add(15 * time.Second)
	require.NoError(t, w.Write(context.Background()))
	if v := instant(`fleetpulse_hub_rollout_phase`, now.Add(time.Second)); len(v) != 1 || v[0].Metric.Get("name") != "web" {
		t.Errorf("after the db rollout went: %v, want web only", v)
	}
	q, err := db.Querier(0, math.MaxInt64)
	require.NoError(t, err)
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "name", "db"))
	require.True(t, ss.Next())
	it := ss.At().Iterator(nil)
	var last float64
	for it.Next() != 0 {
		_, last = it.At()
	}
	if !value.IsStaleNaN(last) {
		t.Errorf("the db series ends with %v, want a staleness marker", last)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err == nil {
		t.Error("an empty config passed")
	}
}
