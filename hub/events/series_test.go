package events

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// TestSeriesRecorderCountsIntoTheClusterTSDB records two batches into a real
// metric store and reads the counter back as PromQL would see it.
func TestSeriesRecorderCountsIntoTheClusterTSDB(t *testing.T) {
	t.Parallel()
	cfg := metricstore.DefaultConfig()
	cfg.Dir = t.TempDir()
	store, err := metricstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rec := NewSeriesRecorder(store)
	batch := func(n int) []Event {
		return Decode("east", logsN(n, "BackOff"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for err := rec.Record(context.Background(), "east", batch(3)); err != nil; err = rec.Record(context.Background(), "east", batch(3)) {
		// Appends may be refused while the store opens; poll until one lands.
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := rec.Record(context.Background(), "east", batch(2)); err != nil {
		t.Fatal(err)
	}

	q, err := store.Queryable().Querier(0, time.Now().Add(time.Minute).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, SeriesName))
	var got []float64
	var lset labels.Labels
	for set.Next() {
		lset = set.At().Labels()
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			got = append(got, v)
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	want := labels.FromStrings(model.MetricNameLabel, SeriesName, "cluster", "east", "kind", "Pod", "reason", "BackOff", "type", "Warning")
	if !labels.Equal(lset, want) {
		t.Errorf("series %s, want %s", lset, want)
	}
	if len(got) != 3 || got[0] != 0 || got[1] != 3 || got[2] != 5 {
		t.Errorf("samples %v, want [0 3 5]: a zero, then the running total", got)
	}
}

type failingAppenders struct{}

func (failingAppenders) Appender(context.Context, string) (storage.Appender, error) {
	return metricstore.FixedAppender{Err: errors.New("disk full")}, nil
}

// TestSeriesRecorderCountsNothingOnError: a refused request must not count,
// or the agent's resend would count twice.
func TestSeriesRecorderCountsNothingOnError(t *testing.T) {
	t.Parallel()
	rec := NewSeriesRecorder(failingAppenders{})
	if err := rec.Record(context.Background(), "east", Decode("east", logsN(2, "BackOff"))); err == nil {
		t.Fatal("Record succeeded through a failing appender")
	}
	if cs := rec.clusters["east"]; cs != nil && len(cs.series) != 0 {
		t.Errorf("totals %v after a failed record, want none", cs.series)
	}
}

func logsN(n int, reason string) plog.Logs {
	ld := logs(time.Now(), reason, "x")
	lrs := ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords()
	for range n - 1 {
		lrs.At(0).CopyTo(lrs.AppendEmpty())
	}
	return ld
}
