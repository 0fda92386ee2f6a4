package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/exportertest"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap/zaptest"

	"github.com/fleetpulse/fleetpulse/testbed"
)

const seriesPerBatch = 20

// TestNoSampleLostAcrossOutageAndRestart sends metrics to a real Prometheus
// remote-write receiver, stops the receiver under load, restarts the exporter
// (same disk queue) during the outage, brings the receiver back, and checks
// that every sample sent arrived: exact count, with identity labels.
// FLEETPULSE_OUTAGE sets the outage (default 5s; the figure is 2m).
func TestNoSampleLostAcrossOutageAndRestart(t *testing.T) {
	t.Parallel()
	outage := 5 * time.Second
	if v := os.Getenv("FLEETPULSE_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FLEETPULSE_OUTAGE: %v", err)
		}
		outage = d
	}
	// A retry after an agent restart may reorder one batch; an out-of-order
	// window takes it, as the hub's does.
	prom := testbed.StartPrometheus(t, testbed.PrometheusOptions{Config: "storage:\n  tsdb:\n    out_of_order_time_window: 1h\n"})
	queueDir := t.TempDir()

	agent := startAgentExporter(t, prom.URL, queueDir)
	const interval = 50 * time.Millisecond
	stopAt := 20
	resumeAt := stopAt + int(outage/interval)
	restartAgentAt := (stopAt + resumeAt) / 2
	batches := resumeAt + 30
	base := time.Now().Add(-time.Minute)
	for b := range batches {
		switch {
		case b == stopAt:
			prom.Stop()
			t.Logf("batch %d: receiver stopped for %s", b, outage)
		case b == restartAgentAt:
			agent.stop(t)
			agent = startAgentExporter(t, prom.URL, queueDir)
			t.Logf("batch %d: exporter restarted on the same disk queue", b)
		case b == resumeAt:
			prom.Start()
			t.Logf("batch %d: receiver back", b)
		}
		if err := agent.exp.ConsumeMetrics(context.Background(), testBatch(b, base.Add(time.Duration(b)*100*time.Millisecond))); err != nil {
			t.Fatalf("batch %d refused: %v", b, err)
		}
		time.Sleep(interval) // the load's pace, not synchronisation
	}
	defer agent.stop(t)

	api := promv1.NewAPI(mustClient(t, prom.URL))
	want := float64(batches * seriesPerBatch)
	t.Logf("sent %d samples in %d batches", int(want), batches)
	deadline := time.Now().Add(2*time.Minute + outage)
	var got float64
	for time.Now().Before(deadline) {
		v, _, err := api.Query(context.Background(), `sum(count_over_time(fleetpulse_test_samples{k8s_cluster_name="cluster-a"}[1h]))`, time.Now())
		if err == nil {
			if vec, ok := v.(model.Vector); ok && len(vec) == 1 {
				got = float64(vec[0].Value)
				if got == want {
					break
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if got != want {
		t.Fatalf("receiver holds %v samples labelled k8s_cluster_name=cluster-a, want %v (all sent)", got, want)
	}
}

func TestStatusDecidesRetry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status    int
		retryable bool
	}{
		{http.StatusBadRequest, false},
		{http.StatusUnauthorized, false},
		{http.StatusRequestEntityTooLarge, false},
		{http.StatusTooManyRequests, true},
		{http.StatusInternalServerError, true},
		{http.StatusServiceUnavailable, true},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					http.Error(w, "no", tc.status)
					return
				}
				w.WriteHeader(http.StatusNoContent)
			}))
			defer srv.Close()
			cfg := createDefaultConfig()
			cfg.Endpoint = srv.URL
			cfg.QueueConfig.GetOrInsertDefault().WaitForResult = true
			cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 10*time.Millisecond, 10*time.Millisecond
			exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(typeStr), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := exp.Start(context.Background(), testHost{}); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = exp.Shutdown(context.Background()) }()
			err = exp.ConsumeMetrics(context.Background(), testBatch(0, time.Now()))
			if tc.retryable && (err != nil || calls.Load() != 2) {
				t.Errorf("status %d: err %v after %d calls, want success on the retry", tc.status, err, calls.Load())
			}
			if !tc.retryable && (err == nil || calls.Load() != 1 || !strings.Contains(err.Error(), "no")) {
				t.Errorf("status %d: err %v after %d calls, want one call and the hub's message", tc.status, err, calls.Load())
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.MetricsPath = "api/v1/write"
	err := cfg.Validate()
	for _, want := range []string{`"endpoint" is required`, `"metrics_path"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
	cfg = createDefaultConfig()
	cfg.Endpoint = "hub:8443"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"endpoint" "hub:8443"`) {
		t.Errorf("Validate() = %v, want it to reject an endpoint without scheme", err)
	}
}

// testBatch is one scrape's worth: seriesPerBatch series, one sample each.
func testBatch(b int, ts time.Time) pmetric.Metrics {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("k8s.cluster.name", "cluster-a")
	m := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("fleetpulse.test.samples")
	dps := m.SetEmptyGauge().DataPoints()
	for s := range seriesPerBatch {
		dp := dps.AppendEmpty()
		dp.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		dp.SetIntValue(int64(b))
		dp.Attributes().PutStr("series", fmt.Sprint(s))
	}
	return md
}

type agentExporter struct {
	exp     exporter.Metrics
	storage extension.Extension
}

// startAgentExporter starts a file_storage extension on dir and the exporter
// with its queue on it, as the agent's default pipeline does.
func startAgentExporter(t *testing.T, endpoint, dir string) *agentExporter {
	t.Helper()
	sf := filestorage.NewFactory()
	scfg := sf.CreateDefaultConfig().(*filestorage.Config)
	scfg.Directory = dir
	storage, err := sf.Create(context.Background(), extensiontest.NewNopSettings(sf.Type()), scfg)
	if err != nil {
		t.Fatal(err)
	}
	storageID := component.NewID(sf.Type())
	host := testHost{storageID: storage}
	if err := storage.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig()
	cfg.Endpoint = endpoint
	q := cfg.QueueConfig.GetOrInsertDefault()
	q.StorageID = &storageID
	cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 100*time.Millisecond, time.Second
	set := exportertest.NewNopSettings(typeStr)
	// The disk queue is keyed by the exporter's ID: a restarted agent has the
	// same one (the nop settings would pick a random name).
	set.ID = component.NewID(typeStr)
	if os.Getenv("FLEETPULSE_TEST_LOG") != "" {
		set.Logger = zaptest.NewLogger(t)
	}
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return &agentExporter{exp: exp, storage: storage}
}

func (a *agentExporter) stop(t *testing.T) {
	if err := a.exp.Shutdown(context.Background()); err != nil {
		t.Errorf("exporter shutdown: %v", err)
	}
	if err := a.storage.Shutdown(context.Background()); err != nil {
		t.Errorf("storage shutdown: %v", err)
	}
}

type testHost map[component.ID]component.Component

func (h testHost) GetExtensions() map[component.ID]component.Component { return h }

func mustClient(t *testing.T, url string) promapi.Client {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
