package events

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"google.golang.org/protobuf/encoding/protowire"
)

// TestDistinctReasonsStayBounded: 40,000 made-up reasons from a cluster's
// users add one "other" series, on /metrics and in the store, while the
// events themselves keep their reasons.
func TestDistinctReasonsStayBounded(t *testing.T) {
	t.Parallel()
	r := newRig(t, 100_000, 32<<20)
	r.send("east", agentLogs(time.Now(), testEvent{reason: "BackOff", typ: "Warning", kind: "Pod", name: "web-1", msg: "x"}))
	before, _ := r.metricCount("")

	const reasons, perRequest = 40_000, 5_000
	for i := 0; i < reasons; i += perRequest {
		evs := make([]testEvent, perRequest)
		for j := range evs {
			evs[j] = testEvent{reason: fmt.Sprintf("Custom%05d", i+j), typ: fmt.Sprintf("Type%d", j), kind: fmt.Sprintf("Kind%d", j), name: "web-1", msg: "x"}
		}
		r.send("east", agentLogs(time.Now(), evs...))
	}

	after, family := r.metricCount("fleetpulse_hub_events_total")
	if family != 2 || after-before > 1 {
		t.Errorf("/metrics: %d series of fleetpulse_hub_events_total (want 2: BackOff and other), %d series in all after %d reasons (was %d)", family, after, reasons, before)
	}
	if v := testutil.ToFloat64(r.events.metrics.received.WithLabelValues("east", Other, Other, Other)); v != reasons {
		t.Errorf("counted %v events as other, want %d", v, reasons)
	}
	series := r.stored("east")
	if len(series) != 2 {
		t.Errorf("store holds %d series of %s, want 2: %v", len(series), SeriesName, keys(series))
	}
	other := series[`{__name__="fleetpulse_events_total", cluster="east", kind="other", reason="other", type="other"}`]
	if len(other) == 0 || other[len(other)-1].v != reasons {
		t.Errorf("other series %v, want it to end at %d", other, reasons)
	}
	got := r.get("cluster=east&limit=1")
	if len(got.Data) != 1 || !strings.HasPrefix(got.Data[0].Reason, "Custom") {
		t.Errorf("newest event %+v, want its own reason Custom…", got.Data)
	}
}

// TestFieldsAreTruncated: a 10 MiB message and over-long names are kept cut,
// marked, as valid UTF-8, and the store's memory stays small.
func TestFieldsAreTruncated(t *testing.T) {
	t.Parallel()
	r := newRig(t, 100, 32<<20)
	huge := strings.Repeat("é", 5<<20) // 10 MiB of two-byte runes
	long := strings.Repeat("n", 1000)
	for range 3 {
		r.send("east", agentLogs(time.Now(), testEvent{reason: strings.Repeat("R", 300), typ: "Warning", kind: "Pod", namespace: long, name: long, msg: huge}))
	}
	got := r.get("cluster=east")
	if len(got.Data) != 3 {
		t.Fatalf("%d events stored, want 3", len(got.Data))
	}
	ev := got.Data[0]
	for _, f := range []struct {
		name, v string
		max     int
	}{{"message", ev.Message, MaxMessageBytes}, {"name", ev.Name, MaxNameBytes}, {"namespace", ev.Namespace, MaxNamespaceBytes}, {"reason", ev.Reason, 128}} {
		if len(f.v) > f.max || len(f.v) < f.max-8 || !strings.HasSuffix(f.v, Ellipsis) || !utf8.ValidString(f.v) {
			t.Errorf("%s of %d bytes (%q…): want at most %d, ending in %q, valid UTF-8", f.name, len(f.v), f.v[:min(len(f.v), 20)], f.max, Ellipsis)
		}
	}
	if !ev.Truncated {
		t.Error("event not marked truncated")
	}
	if got.bytes > 64<<10 {
		t.Errorf("query answer of %d bytes for 3 events", got.bytes)
	}
	if v := testutil.ToFloat64(r.events.metrics.storedBytes); v > 64<<10 {
		t.Errorf("store holds %v bytes for 3 events", v)
	}
	if v := testutil.ToFloat64(r.events.metrics.truncated); v != 3 {
		t.Errorf("fleetpulse_hub_events_truncated_total %v, want 3", v)
	}
}

// TestQueryLimitIsCapped: a query asking for a million events gets
// MaxQueryLimit of them, the newest, and a warning saying so.
func TestQueryLimitIsCapped(t *testing.T) {
	t.Parallel()
	r := newRig(t, 5000, 32<<20)
	base := time.Now().Add(-time.Minute)
	evs := make([]testEvent, 3000)
	for i := range evs {
		evs[i] = testEvent{reason: "Pulled", typ: "Normal", kind: "Pod", name: "web-1", msg: strings.Repeat("m", 1000)}
	}
	ld := agentLogs(base, evs...)
	for i := range evs {
		lr := ld.ResourceLogs().At(i).ScopeLogs().At(0).LogRecords().At(0)
		lr.SetTimestamp(pcommon.NewTimestampFromTime(base.Add(time.Duration(i) * time.Millisecond)))
	}
	r.send("east", ld)
	got := r.get("limit=1000000")
	if len(got.Data) != MaxQueryLimit {
		t.Fatalf("%d events returned, want %d", len(got.Data), MaxQueryLimit)
	}
	if !got.Data[0].Time.Equal(base.Add(2999 * time.Millisecond)) {
		t.Errorf("first event at %s, want the newest, %s", got.Data[0].Time, base.Add(2999*time.Millisecond))
	}
	if len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], fmt.Sprint(MaxQueryLimit)) {
		t.Errorf("warnings %q, want one naming the maximum %d", got.Warnings, MaxQueryLimit)
	}
	if got.bytes > 2<<20 {
		t.Errorf("answer of %d bytes", got.bytes)
	}
}

// TestIngestRefusesOverLimits: requests that break a limit are refused with
// a status saying which and a message naming the limit, and store nothing.
func TestIngestRefusesOverLimits(t *testing.T) {
	t.Parallel()
	r := newRig(t, 100, 32<<20, WithMaxEventsPerRequest(10))
	ev := testEvent{reason: "BackOff", typ: "Warning", kind: "Pod", name: "web-1", msg: "x"}
	manyAttrs := agentLogs(time.Now(), ev)
	attrs := manyAttrs.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes()
	for i := range 2000 {
		attrs.PutStr(fmt.Sprint("a", i), "")
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"events per request", encode(t, agentLogs(time.Now(), repeat(ev, 11)...)), http.StatusRequestEntityTooLarge, "more than 10 log records"},
		{"fields per request", encode(t, manyAttrs), http.StatusRequestEntityTooLarge, "more than 1280 fields"},
		{"malformed", []byte{0x0a, 0x05, 0x01}, http.StatusBadRequest, "decode OTLP logs request"},
		{"body size", make([]byte, 33<<20), http.StatusRequestEntityTooLarge, fmt.Sprintf("over the limit of %d bytes", 32<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := r.post("east", tc.body)
			if status != tc.status || !strings.Contains(msg, tc.want) {
				t.Errorf("answered %d %q, want %d naming %q", status, msg, tc.status, tc.want)
			}
		})
	}
	if got := r.get("").Data; len(got) != 0 {
		t.Errorf("%d events stored from refused requests", len(got))
	}
	r.send("east", agentLogs(time.Now(), repeat(ev, 10)...))
}

// TestIngestRefusesDeepValues: values nested deep enough overflow the OTLP
// decoder's stack, a fatal error that takes the whole hub down; the hub
// must refuse them before decoding. 3 MiB of nested arrays stay under the
// default fields per request, so only the nesting limit stops them.
func TestIngestRefusesDeepValues(t *testing.T) {
	t.Parallel()
	r := newRig(t, 100, 32<<20)
	for _, size := range []int{1 << 10, 3 << 20} {
		status, msg := r.post("east", nestedBody(size))
		if want := fmt.Sprintf("deeper than the limit of %d levels", maxValueDepth); status != http.StatusBadRequest || !strings.Contains(msg, want) {
			t.Errorf("%d bytes of nested values: answered %d %q, want 400 naming %q", size, status, msg, want)
		}
	}
}

func repeat(ev testEvent, n int) []testEvent {
	evs := make([]testEvent, n)
	for i := range evs {
		evs[i] = ev
	}
	return evs
}

// nestedBody is an ExportLogsServiceRequest of about size bytes whose one
// log record's body is arrays nested in arrays as deep as they fit.
func nestedBody(size int) []byte {
	var sizes []int // encoded size of the AnyValue at each level, innermost first
	for s := 0; s < size; {
		arr := 1 + protowire.SizeVarint(uint64(s)) + s
		s = 1 + protowire.SizeVarint(uint64(arr)) + arr
		sizes = append(sizes, s)
	}
	value := make([]byte, 0, sizes[len(sizes)-1])
	for i := len(sizes) - 1; i >= 0; i-- {
		inner := 0
		if i > 0 {
			inner = sizes[i-1]
		}
		value = protowire.AppendTag(value, 5, protowire.BytesType) // AnyValue.array_value
		value = protowire.AppendVarint(value, uint64(1+protowire.SizeVarint(uint64(inner))+inner))
		value = protowire.AppendTag(value, 1, protowire.BytesType) // ArrayValue.values
		value = protowire.AppendVarint(value, uint64(inner))
	}
	wrap := func(field protowire.Number, b []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, field, protowire.BytesType), b)
	}
	// request.resource_logs / scope_logs / log_records / body
	return wrap(1, wrap(2, wrap(2, wrap(5, value))))
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
