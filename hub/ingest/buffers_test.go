package ingest

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// TestPooledRequestsKeepNothingOfEachOther sends request after request of
// new series, of both remote-write versions, each the same size as the
// last but other label bytes, so that every request is decoded into the
// memory of the one before: everything stored must read as Prometheus's
// handler stores it, none of it overwritten by a later request.
func TestPooledRequestsKeepNothingOfEachOther(t *testing.T) {
	t.Parallel()
	fastStore, promStore := openStore(t, time.Hour, nil), openStore(t, time.Hour, nil)
	fast, prom := newTestHandler(fastStore, true), newTestHandler(promStore, false)
	t0 := time.Now().Add(-time.Minute).UnixMilli()
	for i := range 40 {
		sample := []prompb.Sample{{Timestamp: t0 + int64(i), Value: float64(i)}}
		var body []byte
		if i%2 == 0 {
			body = rw1Body(t,
				series(fmt.Sprintf("metric_%03d", i), sample, "job", fmt.Sprintf("job-%03d", i), "pod", fmt.Sprintf("pod-%03d", i)),
				series("shared", sample, "job", "j", "pod", fmt.Sprintf("pod-%03d", i)))
		} else {
			v2 := []writev2.Sample{{Timestamp: t0 + int64(i), Value: float64(i)}}
			body = rw2Body(t,
				v2series(v2, "__name__", fmt.Sprintf("metric_%03d", i), "job", fmt.Sprintf("job-%03d", i), "pod", fmt.Sprintf("pod-%03d", i)).
					with(withMetadata(writev2.Metadata_METRIC_TYPE_GAUGE, fmt.Sprintf("help %03d", i), "")),
				v2series(v2, "__name__", "shared", "job", "j", "pod", fmt.Sprintf("pod-%03d", i)))
		}
		var header map[string]string
		if i%2 == 1 {
			header = rw2Header
		}
		got, want := post(fast, body, header), post(prom, body, header)
		if got.code != want.code || got.code != http.StatusNoContent {
			t.Fatalf("request %d: answer %d %q, Prometheus's handler %d %q", i, got.code, got.body, want.code, want.body)
		}
	}
	if got, want := dump(t, fastStore), dump(t, promStore); got != want {
		t.Errorf("stored:\n%s\nthrough Prometheus's handler:\n%s", got, want)
	}
	if fast.rw1Served.Load() == 0 || fast.rw2Served.Load() == 0 {
		t.Errorf("served by rw1.go %d, rw2.go %d: want both", fast.rw1Served.Load(), fast.rw2Served.Load())
	}
}
