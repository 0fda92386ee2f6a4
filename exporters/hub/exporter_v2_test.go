package hub

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
	"go.opentelemetry.io/collector/exporter/exportertest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fleetpulse/fleetpulse/exporters/hub/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// received is one request as a fake receiver decoded it.
type received struct {
	version string // X-Prometheus-Remote-Write-Version
	samples int
}

// fakeReceiver decodes remote write 1.0 and 2.0 by Content-Type, as the
// specification has receivers do, records each request and answers with
// what answer gives for it.
type fakeReceiver struct {
	mu     sync.Mutex
	got    []received
	answer func(w http.ResponseWriter, r received)
}

func (f *fakeReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	raw, err := snappy.Decode(nil, body)
	if err != nil || r.Header.Get("Content-Encoding") != "snappy" {
		http.Error(w, "not snappy", http.StatusBadRequest)
		return
	}
	rec := received{version: r.Header.Get("X-Prometheus-Remote-Write-Version")}
	switch ct := r.Header.Get("Content-Type"); {
	case ct == "application/x-protobuf;proto=io.prometheus.write.v2.Request" && rec.version == "2.0.0":
		var req writev2.Request
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, ts := range req.Timeseries {
			rec.samples += len(ts.Samples)
		}
	case ct == "application/x-protobuf" && rec.version == "0.1.0":
		var req prompb.WriteRequest
		if err := req.Unmarshal(raw); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, ts := range req.Timeseries {
			rec.samples += len(ts.Samples)
		}
	default:
		http.Error(w, "content type "+ct+", version "+rec.version, http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.got = append(f.got, rec)
	f.mu.Unlock()
	f.answer(w, rec)
}

// TestRemoteWrite2Answers sends two batches of 4 samples with protocol rw2
// to receivers answering in each way the 2.0 specification names, and checks
// what the exporter sent, returned, logged and counted.
func TestRemoteWrite2Answers(t *testing.T) {
	written := func(n int) func(w http.ResponseWriter, r received) {
		return func(w http.ResponseWriter, r received) {
			if r.version == "2.0.0" {
				w.Header().Set(headerSamplesWritten, strconv.Itoa(n))
				w.Header().Set(headerHistogramsWritten, "0")
				w.Header().Set(headerExemplarsWritten, "0")
			}
			w.WriteHeader(http.StatusNoContent)
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r received)
		// versions of the requests the receiver got, in order
		wantVersions []string
		wantErr      string
		wantWarning  string
		unwritten    int64
	}{{
		name:         "all written",
		answer:       written(4),
		wantVersions: []string{"2.0.0", "2.0.0"},
	}, {
		name:         "fewer written than sent is logged and counted",
		answer:       written(3),
		wantVersions: []string{"2.0.0", "2.0.0"},
		wantWarning:  "remote-write 2.0 receiver acknowledged the request but wrote fewer samples than sent",
		unwritten:    2,
	}, {
		name: "a 1.0 receiver (2xx, no written counts) gets 1.0 from then on",
		answer: func(w http.ResponseWriter, r received) {
			w.WriteHeader(http.StatusNoContent)
		},
		wantVersions: []string{"2.0.0", "0.1.0", "0.1.0"},
		wantWarning:  "receiver does not take remote write 2.0; sending remote write 1.0 from now on (set protocol: rw1 to start so)",
	}, {
		name: "415 gets 1.0 from then on",
		answer: func(w http.ResponseWriter, r received) {
			if r.version == "2.0.0" {
				http.Error(w, "unsupported", http.StatusUnsupportedMediaType)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		},
		wantVersions: []string{"2.0.0", "0.1.0", "0.1.0"},
		wantWarning:  "receiver does not take remote write 2.0; sending remote write 1.0 from now on (set protocol: rw1 to start so)",
	}, {
		name: "partial write: 400 with the written count, not retried",
		answer: func(w http.ResponseWriter, r received) {
			w.Header().Set(headerSamplesWritten, "1")
			http.Error(w, "out of order sample", http.StatusBadRequest)
		},
		wantVersions: []string{"2.0.0", "2.0.0"},
		wantErr:      "out of order sample (receiver wrote 1 of 4 samples)",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			recv := &fakeReceiver{answer: tc.answer}
			srv := httptest.NewServer(recv)
			defer srv.Close()
			cfg := createDefaultConfig()
			cfg.Endpoint = srv.URL
			cfg.Protocol = ProtocolRW2
			cfg.QueueConfig = configoptional.None[exporterhelper.QueueBatchConfig]()
			cfg.BackOffConfig.Enabled = false
			set := exportertest.NewNopSettings(metadata.Type)
			core, logs := observer.New(zapcore.WarnLevel)
			set.Logger = zap.New(core)
			reader := sdkmetric.NewManualReader()
			set.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
			exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Start(context.Background(), testHost{}); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(context.Background()) }()

			for b := range 2 {
				md := metricsOf(map[string]any{"k8s.cluster.name": "cluster-a"}, gauge("g", "", intPoint(int64(b), t0, nil)))
				ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
				for _, n := range []string{"h", "i", "j"} {
					gauge(n, "", intPoint(int64(b), t0, nil))(ms.AppendEmpty())
				}
				err := exp.ConsumeMetrics(context.Background(), md)
				switch {
				case tc.wantErr == "" && err != nil:
					t.Errorf("batch %d: %v", b, err)
				case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
					t.Errorf("batch %d: error %v, want one containing %q", b, err, tc.wantErr)
				}
			}

			recv.mu.Lock()
			var versions []string
			for _, r := range recv.got {
				versions = append(versions, r.version)
				if r.samples != 4 {
					t.Errorf("a %s request held %d samples, want 4", r.version, r.samples)
				}
			}
			recv.mu.Unlock()
			if strings.Join(versions, " ") != strings.Join(tc.wantVersions, " ") {
				t.Errorf("receiver got versions %q, want %q", versions, tc.wantVersions)
			}
			var warnings []string
			fallbacks := 0
			for _, e := range logs.All() {
				if strings.HasPrefix(e.Message, "Exporting failed") { // exporterhelper's, for the error
					continue
				}
				warnings = append(warnings, e.Message)
				if strings.HasPrefix(e.Message, "receiver does not take remote write 2.0") {
					fallbacks++
				}
			}
			if fallbacks > 1 {
				t.Errorf("the fall-back to 1.0 was logged %d times, want once", fallbacks)
			}
			if tc.wantWarning == "" && len(warnings) > 0 {
				t.Errorf("warnings %q, want none", warnings)
			}
			if tc.wantWarning != "" && (len(warnings) == 0 || warnings[0] != tc.wantWarning) {
				t.Errorf("warnings %q, want %q", warnings, tc.wantWarning)
			}
			if got := unwrittenSamples(t, reader); got != tc.unwritten {
				t.Errorf("unwritten samples counter = %d, want %d", got, tc.unwritten)
			}
		})
	}
}

func unwrittenSamples(t *testing.T, reader *sdkmetric.ManualReader) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "fleetpulse.hub_exporter.unwritten_samples" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				n += dp.Value
			}
		}
	}
	return n
}

func TestSamplesWritten(t *testing.T) {
	for _, tc := range []struct {
		headers   map[string]string
		written   int
		confirmed bool
		err       bool
	}{
		{nil, 0, false, false},
		{map[string]string{headerSamplesWritten: "5"}, 5, true, false},
		{map[string]string{headerSamplesWritten: "5", headerHistogramsWritten: "2", headerExemplarsWritten: "9"}, 7, true, false},
		{map[string]string{headerExemplarsWritten: "1"}, 0, true, false},
		{map[string]string{headerSamplesWritten: "many"}, 0, true, true},
	} {
		h := http.Header{}
		for k, v := range tc.headers {
			h.Set(k, v)
		}
		written, confirmed, err := samplesWritten(h)
		if written != tc.written || confirmed != tc.confirmed || (err != nil) != tc.err {
			t.Errorf("samplesWritten(%v) = %d, %v, %v; want %d, %v, error %v", tc.headers, written, confirmed, err, tc.written, tc.confirmed, tc.err)
		}
	}
}

// TestRemoteWrite2FallsBackWithPrometheus2 sends with protocol rw2 to
// Debian's Prometheus 2.42, a 1.0 receiver that reads a 2.0 message as an
// empty 1.0 one and answers 204: the exporter notices the missing written
// counts, sends the batch again as 1.0 and the series arrive.
func TestRemoteWrite2FallsBackWithPrometheus2(t *testing.T) {
	t.Parallel()
	prom := testbed.StartPrometheus(t, testbed.PrometheusOptions{})
	cfg := createDefaultConfig()
	cfg.Endpoint = prom.URL
	cfg.Protocol = ProtocolRW2
	exp, logs := startUnqueued(t, cfg)
	now := time.Now()
	if err := exp.ConsumeMetrics(context.Background(), testBatch(7, now)); err != nil {
		t.Fatal(err)
	}
	if w := logs.FilterMessageSnippet("sending remote write 1.0 from now on").All(); len(w) != 1 {
		t.Errorf("warnings %v, want one about falling back to 1.0", logs.All())
	} else {
		t.Logf("%s: answer %q", w[0].Message, w[0].ContextMap()["answer"])
	}
	api := promv1.NewAPI(mustClient(t, prom.URL))
	v, _, err := api.Query(context.Background(), `count(fleetpulse_test_samples{k8s_cluster_name="cluster-a"} == 7)`, now)
	if vec, ok := v.(model.Vector); err != nil || !ok || len(vec) != 1 || int(vec[0].Value) != seriesPerBatch {
		t.Fatalf("Prometheus holds %v (err %v), want %d series of value 7", v, err, seriesPerBatch)
	}
}
