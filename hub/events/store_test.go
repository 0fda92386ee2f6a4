package events

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

func TestStoreKeepsTheNewestAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStore(3, reg)
	base := time.Unix(1_800_000_000, 0)
	for i := range 5 {
		s.Add(fmt.Sprintf("cluster-%d", i%2), logs(base.Add(time.Duration(i)*time.Second), "BackOff", fmt.Sprint("event ", i)))
	}
	got := s.Query("", base, base.Add(time.Hour), 10)
	if len(got) != 3 || got[0].Message != "event 4" || got[2].Message != "event 2" {
		t.Fatalf("kept %+v, want events 4, 3, 2", got)
	}
	if got := s.Query("cluster-1", base, base.Add(time.Hour), 10); len(got) != 1 || got[0].Message != "event 3" {
		t.Errorf("cluster-1: %+v, want event 3 only", got)
	}
	if got := s.Query("", base.Add(3*time.Second), base.Add(4*time.Second), 10); len(got) != 1 || got[0].Message != "event 3" {
		t.Errorf("time window: %+v, want event 3 only", got)
	}
	if v := testutil.ToFloat64(s.metrics.received.WithLabelValues("cluster-0", "BackOff", "Warning", "Pod")); v != 3 {
		t.Errorf("counted %v events of cluster-0, want 3 (evicted ones stay counted)", v)
	}
}

func logs(ts time.Time, reason, msg string) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.object.kind", "Pod")
	rl.Resource().Attributes().PutStr("k8s.object.name", "web-1")
	lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
	lr.Body().SetStr(msg)
	lr.Attributes().PutStr("k8s.event.reason", reason)
	lr.Attributes().PutStr("k8s.event.type", "Warning")
	return ld
}

// The ring starts small and grows as events arrive; nothing is evicted until
// the store holds capacity events, and from then on the oldest goes first.
func TestStoreGrowsUpToItsCapacity(t *testing.T) {
	t.Parallel()
	const capacity = 3*minRing + 7 // not a power of two times minRing
	s := NewStore(capacity, nil)
	if len(s.ring) != minRing {
		t.Fatalf("ring of %d before any event, want %d", len(s.ring), minRing)
	}
	base := time.Unix(1_800_000_000, 0)
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	// Wrap the first ring once before it grows, so that growing must unroll it.
	for i := range capacity + 10 {
		s.Put([]Event{{Cluster: "east", Time: at(i), Type: "Normal", Reason: "Pulled", Kind: "Pod", Name: "web", Message: fmt.Sprint(i)}})
		if want := min(i+1, capacity); s.n != want {
			t.Fatalf("after %d events the store holds %d, want %d", i+1, s.n, want)
		}
	}
	if len(s.ring) != capacity {
		t.Errorf("ring of %d after %d events, want the capacity %d", len(s.ring), capacity+10, capacity)
	}
	got := s.Query("", base, at(capacity+10), capacity+10)
	if len(got) != capacity {
		t.Fatalf("query returned %d events, want %d", len(got), capacity)
	}
	for j, ev := range got {
		if want := fmt.Sprint(capacity + 9 - j); ev.Message != want {
			t.Fatalf("event %d newest-first is %q, want %q (the 10 oldest evicted, order kept across growth)", j, ev.Message, want)
		}
	}
}

// A store smaller than the initial ring never allocates more than its capacity.
func TestStoreSmallerThanTheInitialRing(t *testing.T) {
	t.Parallel()
	s := NewStore(5, nil)
	if len(s.ring) != 5 {
		t.Errorf("ring of %d for a capacity of 5", len(s.ring))
	}
}
