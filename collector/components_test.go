package collector

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/fleetpulse/fleetpulse/testbed"
)

func TestComponentsListsTheDistribution(t *testing.T) {
	f, err := Components()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"receivers":  {"otlp", "k8s_inventory", "k8s_events"},
		"processors": {"batch", "memory_limiter", "cluster_identity", "series_limit"},
		"exporters":  {"debug", "otlp", "otlphttp", "fleetpulse_hub"},
		"extensions": {"zpages", "file_storage", "fleetpulse_registration", "fleetpulse_work", "fleetpulse_policy", "healthcheckv2"},
	}
	got := map[string][]string{}
	for k := range f.Receivers {
		got["receivers"] = append(got["receivers"], k.String())
	}
	for k := range f.Processors {
		got["processors"] = append(got["processors"], k.String())
	}
	for k := range f.Exporters {
		got["exporters"] = append(got["exporters"], k.String())
	}
	for k := range f.Extensions {
		got["extensions"] = append(got["extensions"], k.String())
	}
	for kind, names := range want {
		for _, n := range names {
			if !strings.Contains(" "+strings.Join(got[kind], " ")+" ", " "+n+" ") {
				t.Errorf("%s lack %q; have %v", kind, n, got[kind])
			}
		}
	}
	if f.Telemetry == nil {
		t.Error("no telemetry factory: the collector refuses to start without one")
	}
}

// TestPipelineDeliversLogs runs the distribution with a user's config (OTLP
// in, batch, OTLP/HTTP out) and checks that a log record sent to its receiver
// reaches a real HTTP server, intact.
func TestPipelineDeliversLogs(t *testing.T) {
	var mu sync.Mutex
	var received []plog.Logs
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := plogotlp.NewExportRequest()
		if err := req.UnmarshalProto(body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		received = append(received, req.Logs())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		resp, _ := plogotlp.NewExportResponse().MarshalProto()
		_, _ = w.Write(resp)
	}))
	defer sink.Close()

	addr := testbed.FreeAddr(t)
	cfg := fmt.Sprintf(`yaml:
receivers:
  otlp:
    protocols:
      http:
        endpoint: %s
processors:
  batch:
    timeout: 100ms
exporters:
  otlphttp:
    endpoint: %s
    compression: none
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [otlphttp]
`, addr, sink.URL)
	col := newCollector(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- col.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("collector run: %v", err)
		}
	}()

	logs := plog.NewLogs()
	rl := logs.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("k8s.cluster.name", "cluster-1")
	rec := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	rec.Body().SetStr("node cluster-1-node-0 is NotReady")
	body, err := plogotlp.NewExportRequestFromLogs(logs).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr + "/v1/logs"
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(body))
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("OTLP receiver answered %s", resp.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OTLP receiver never accepted a request: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no logs reached the OTLP/HTTP server")
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	got := received[0].ResourceLogs().At(0)
	if v, _ := got.Resource().Attributes().Get("k8s.cluster.name"); v.Str() != "cluster-1" {
		t.Errorf("k8s.cluster.name = %q, want cluster-1", v.Str())
	}
	if b := got.ScopeLogs().At(0).LogRecords().At(0).Body().Str(); b != "node cluster-1-node-0 is NotReady" {
		t.Errorf("log body = %q", b)
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	col := newCollector(t, `yaml:
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
        no_such_option: true
exporters:
  debug: {}
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
`)
	err := col.DryRun(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no_such_option") {
		t.Fatalf("DryRun error = %v, want one naming no_such_option", err)
	}
}

func newCollector(t *testing.T, configURI string) *otelcol.Collector {
	t.Helper()
	set := Settings("test", nil)
	set.ConfigProviderSettings.ResolverSettings.URIs = []string{configURI}
	col, err := otelcol.NewCollector(set)
	if err != nil {
		t.Fatal(err)
	}
	return col
}
