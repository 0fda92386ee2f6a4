package events

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
)

// FuzzIngest posts arbitrary bodies to the ingest handler: it must never
// panic nor answer 5xx for bad input, must take what decodes, and must keep
// every field within its limit.
func FuzzIngest(f *testing.F) {
	ev := testEvent{reason: "BackOff", typ: "Warning", kind: "Pod", namespace: "default", name: "web-1", msg: "Back-off restarting failed container"}
	valid := encode(f, agentLogs(time.Unix(1_800_000_000, 0), ev, ev))
	f.Add(valid)
	f.Add([]byte{})
	f.Add(nestedBody(1 << 10))
	f.Add(valid[:len(valid)/2])
	f.Add([]byte{0x0a, 0x04, 0x13, 0x14, 0x08, 0x01})       // a group inside resource_logs
	f.Add([]byte{0x0b, 0x0a, 0x02, 0x12, 0x00, 0x0c})       // a group at the top
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x1f, 0x0a, 0x00}) // a field number past 2^29
	f.Add([]byte{0x0a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}) // a length past the end

	store := NewStore(100, nil, WithMaxEventsPerRequest(50))
	h := NewIngestHandler(store, NewSeriesRecorder(okAppenders{}), 1<<20)
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/logs", bytes.NewReader(body))
		req = req.WithContext(gateway.NewContext(req.Context(), gateway.Identity{Cluster: "east"}))
		req.Header.Set("Content-Type", "application/x-protobuf")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("answered %d to bad input: %s", w.Code, w.Body)
		}
		_, inspectErr := inspect(body, 50)
		if inspectErr == nil && plogotlp.NewExportRequest().UnmarshalProto(body) == nil && w.Code != http.StatusOK && w.Code != http.StatusTooManyRequests {
			t.Fatalf("refused a request that decodes with %d: %s", w.Code, w.Body)
		}
		for _, ev := range store.Query("", time.Time{}, time.Unix(1<<40, 0), MaxQueryLimit) {
			if len(ev.Message) > MaxMessageBytes || len(ev.Name) > MaxNameBytes || len(ev.Namespace) > MaxNamespaceBytes ||
				len(ev.Reason) > maxShortBytes || len(ev.Kind) > maxShortBytes || len(ev.Type) > maxShortBytes {
				t.Fatalf("kept a field over its limit: %+v", ev)
			}
		}
	})
}
