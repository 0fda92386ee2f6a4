package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
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

// TestSampleTimesArePerSeries: many clusters sending at once, each several
// requests a millisecond, get every event counted (no sample refused as
// out of order or too old) and no sample more than a cluster's own
// requests' worth of milliseconds ahead of the clock. With the real clock,
// and with one stopped, as if every request came in the same millisecond
// (one clock for all clusters put 1,000 such requests 2 s ahead).
func TestSampleTimesArePerSeries(t *testing.T) {
	t.Parallel()
	stopped := time.Now()
	for name, clock := range map[string]func() time.Time{"real clock": time.Now, "stopped clock": func() time.Time { return stopped }} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, 100_000, 32<<20)
			r.rec.now = clock
			sendConcurrently(t, r, clock)
		})
	}
}

func sendConcurrently(t *testing.T, r *rig, clock func() time.Time) {
	const clusters, requests = 50, 20
	body := encode(t, agentLogs(time.Now(), testEvent{reason: "BackOff", typ: "Warning", kind: "Pod", name: "web-1", msg: "x"}))
	var wg sync.WaitGroup
	refusals := make(chan string, clusters*requests)
	for c := range clusters {
		for range requests {
			wg.Go(func() {
				if status, msg := r.post(fmt.Sprint("c", c), body); status != http.StatusOK {
					refusals <- fmt.Sprintf("%d %s", status, msg)
				}
			})
		}
	}
	wg.Wait()
	end := clock().UnixMilli()
	close(refusals)
	for s := range refusals {
		t.Errorf("request refused: %s", s)
	}
	for c := range clusters {
		series := r.stored(fmt.Sprint("c", c))
		if len(series) != 1 {
			t.Fatalf("cluster c%d: %d series, want 1", c, len(series))
		}
		for lset, ss := range series {
			if len(ss) != requests+1 || ss[len(ss)-1].v != requests {
				t.Errorf("%s: %d samples ending at %v, want a zero and %d counts", lset, len(ss), ss[len(ss)-1].v, requests)
			}
			if last := ss[len(ss)-1].t; last > end+requests {
				t.Errorf("%s: last sample %d ms ahead of the clock", lset, last-end)
			}
		}
	}
}

type okAppenders struct{}

func (okAppenders) Appender(context.Context, string) (storage.Appender, error) {
	return metricstore.FixedAppender{}, nil
}

// TestTooFastIsRefusedPerCluster: a series counted more than once a
// millisecond runs at most MaxAhead ahead of the clock; past that its
// cluster's requests are refused, and other clusters' are not.
func TestTooFastIsRefusedPerCluster(t *testing.T) {
	t.Parallel()
	rec := NewSeriesRecorder(okAppenders{})
	now := time.UnixMilli(1_800_000_000_000)
	rec.now = func() time.Time { return now }
	evs := Decode("east", logsN(1, "BackOff"))
	var err error
	n := 0
	for ; err == nil && n < 5000; n++ {
		err = rec.Record(context.Background(), "east", evs)
	}
	var tf *TooFastError
	if !errors.As(err, &tf) || n != int(MaxAhead.Milliseconds())+2 {
		t.Fatalf("request %d refused with %v, want request %d refused as too fast", n, err, MaxAhead.Milliseconds()+2)
	}
	if !strings.Contains(err.Error(), MaxAhead.String()) {
		t.Errorf("refusal %q does not name the limit %s", err, MaxAhead)
	}
	if err := rec.Record(context.Background(), "west", evs); err != nil {
		t.Errorf("another cluster refused: %v", err)
	}
	// Each millisecond the clock moves on admits one more.
	now = now.Add(10 * time.Millisecond)
	accepted := 0
	for rec.Record(context.Background(), "east", evs) == nil && accepted < 100 {
		accepted++
	}
	if accepted != 10 {
		t.Errorf("%d accepted 10 ms later, want 10", accepted)
	}
}
