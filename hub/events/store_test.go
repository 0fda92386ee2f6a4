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
