package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
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
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/fleetpulse/fleetpulse/exporters/hub/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

const seriesPerBatch = 20

// TestNoSampleLostAcrossOutageAndRestart sends metrics to a real receiver,
// stops the receiver under load, restarts the exporter (same disk queue)
// during the outage, brings the receiver back, and checks that every sample
// sent arrived: exact count, with identity labels. It runs against Debian's
// Prometheus over remote write 1.0 (all it takes) and against the hub, in
// this process over mutual TLS, over remote write 2.0.
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
	t.Run("rw1 to Prometheus", func(t *testing.T) {
		t.Parallel()
		// A retry after an agent restart may reorder one batch; an
		// out-of-order window takes it, as the hub's does.
		prom := testbed.StartPrometheus(t, testbed.PrometheusOptions{Config: "storage:\n  tsdb:\n    out_of_order_time_window: 1h\n"})
		testNoSampleLost(t, outage, prom, prom.URL, func(cfg *Config) { cfg.Endpoint = prom.URL })
	})
	t.Run("rw2 to the hub", func(t *testing.T) {
		t.Parallel()
		ca := testbed.NewCA(t, "outage-agents")
		h := startTestHub(t, ca)
		testNoSampleLost(t, outage, h, h.httpURL, h.agentConfig(ca, "cluster-a", ProtocolRW2))
	})
}

// restartable is a receiver that can be stopped and started again on the
// same address and storage.
type restartable interface {
	Start()
	Stop()
}

// testNoSampleLost runs the outage test against recv, whose Prometheus API
// is at queryURL; configure points the exporter at it.
func testNoSampleLost(t *testing.T, outage time.Duration, recv restartable, queryURL string, configure func(*Config)) {
	queueDir := t.TempDir()
	agent := startAgentExporter(t, queueDir, configure)
	const interval = 50 * time.Millisecond
	stopAt := 20
	resumeAt := stopAt + int(outage/interval)
	restartAgentAt := (stopAt + resumeAt) / 2
	batches := resumeAt + 30
	base := time.Now().Add(-time.Minute)
	for b := range batches {
		switch {
		case b == stopAt:
			recv.Stop()
			t.Logf("batch %d: receiver stopped for %s", b, outage)
		case b == restartAgentAt:
			agent.checkProtocolHeld(t)
			agent.stop(t)
			agent = startAgentExporter(t, queueDir, configure)
			t.Logf("batch %d: exporter restarted on the same disk queue", b)
		case b == resumeAt:
			recv.Start()
			t.Logf("batch %d: receiver back", b)
		}
		if err := agent.exp.ConsumeMetrics(context.Background(), testBatch(b, base.Add(time.Duration(b)*100*time.Millisecond))); err != nil {
			t.Fatalf("batch %d refused: %v", b, err)
		}
		time.Sleep(interval) // the load's pace, not synchronisation
	}
	defer agent.stop(t)

	api := promv1.NewAPI(mustClient(t, queryURL))
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
	agent.checkProtocolHeld(t)
}

// checkProtocolHeld fails the test if the exporter fell back from 2.0 to 1.0
// or a 2.0 receiver reported samples not written.
func (a *agentExporter) checkProtocolHeld(t *testing.T) {
	t.Helper()
	for _, e := range a.logs.All() {
		if strings.HasPrefix(e.Message, "receiver does not take remote write 2.0") || strings.HasPrefix(e.Message, "remote-write 2.0 receiver") {
			t.Errorf("exporter warned: %s %v", e.Message, e.ContextMap())
		}
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
		for _, protocol := range []string{ProtocolRW1, ProtocolRW2} {
			t.Run(protocol+"/"+http.StatusText(tc.status), func(t *testing.T) {
				t.Parallel()
				testStatusDecidesRetry(t, protocol, tc.status, tc.retryable)
			})
		}
	}
}

func testStatusDecidesRetry(t *testing.T, protocol string, status int, retryable bool) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "no", status)
			return
		}
		// A 2.0 receiver counts what it wrote (a 1.0 sender ignores it).
		w.Header().Set(headerSamplesWritten, strconv.Itoa(seriesPerBatch))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cfg := createDefaultConfig()
	cfg.Endpoint = srv.URL
	cfg.Protocol = protocol
	cfg.QueueConfig.GetOrInsertDefault().WaitForResult = true
	cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 10*time.Millisecond, 10*time.Millisecond
	exp, err := NewFactory().CreateMetrics(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), testHost{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	err = exp.ConsumeMetrics(context.Background(), testBatch(0, time.Now()))
	if retryable && (err != nil || calls.Load() != 2) {
		t.Errorf("status %d: err %v after %d calls, want success on the retry", status, err, calls.Load())
	}
	if !retryable && (err == nil || calls.Load() != 1 || !strings.Contains(err.Error(), "no")) {
		t.Errorf("status %d: err %v after %d calls, want one call and the hub's message", status, err, calls.Load())
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
	for _, p := range []string{ProtocolRW1, ProtocolRW2} {
		cfg = createDefaultConfig()
		cfg.Endpoint, cfg.Protocol = "https://hub:8443", p
		if err := cfg.Validate(); err != nil {
			t.Errorf("protocol %q: Validate() = %v", p, err)
		}
	}
	cfg.Protocol = "2.0"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `"protocol" "2.0": want "rw1" (remote write 1.0) or "rw2" (remote write 2.0)`) {
		t.Errorf("Validate() = %v, want it to name the protocol field and the values allowed", err)
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
	logs    *observer.ObservedLogs // its warnings
}

// startAgentExporter starts a file_storage extension on dir and the exporter
// with its queue on it, as the agent's default pipeline does; configure sets
// where it sends, and how.
func startAgentExporter(t *testing.T, dir string, configure func(*Config)) *agentExporter {
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
	configure(cfg)
	q := cfg.QueueConfig.GetOrInsertDefault()
	q.StorageID = &storageID
	cfg.BackOffConfig.InitialInterval, cfg.BackOffConfig.MaxInterval = 100*time.Millisecond, time.Second
	set := exportertest.NewNopSettings(metadata.Type)
	// The disk queue is keyed by the exporter's ID: a restarted agent has the
	// same one (the nop settings would pick a random name).
	set.ID = component.NewID(metadata.Type)
	core, logs := observer.New(zapcore.WarnLevel)
	set.Logger = zap.New(core)
	if os.Getenv("FLEETPULSE_TEST_LOG") != "" {
		set.Logger = zap.New(zapcore.NewTee(core, zaptest.NewLogger(t).Core()))
	}
	exp, err := NewFactory().CreateMetrics(context.Background(), set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return &agentExporter{exp: exp, storage: storage, logs: logs}
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
