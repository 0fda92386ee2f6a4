package work

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	"github.com/fleetpulse/fleetpulse/extensions/work/internal/metadata"
	"github.com/fleetpulse/fleetpulse/extensions/work/internal/metadatatest"
)

// statusHost is the host Collector v0.142 gives an extension: it takes no
// status itself, but holds an extension that watches statuses, as
// healthcheckv2 does, and keeps the extension's.
type statusHost struct {
	component.StartFunc
	component.ShutdownFunc

	mu     sync.Mutex
	events []*componentstatus.Event
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component {
	return map[component.ID]component.Component{component.MustNewID("healthcheckv2"): h}
}

func (h *statusHost) ComponentStatusChanged(source *componentstatus.InstanceID, e *componentstatus.Event) {
	if source.ComponentID().Type() != metadata.Type {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

func (h *statusHost) last() *componentstatus.Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) == 0 {
		return nil
	}
	return h.events[len(h.events)-1]
}

// kubeconfigFor writes a kubeconfig that reaches server.
func kubeconfigFor(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {token: agent}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// An applier that cannot do its job says so in its component status, which
// the Collector's health reads, instead of only retrying in its logs: here
// the cluster refuses it the namespace of its records.
func TestFailureIsTheExtensionsStatus(t *testing.T) {
	apiserver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403,`+
			`"message":"namespaces \"fleetpulse-agent\" is forbidden: User \"agent\" cannot get resource \"namespaces\""}`)
	}))
	defer apiserver.Close()
	cfg := createDefaultConfig()
	cfg.Endpoint, cfg.ClusterName, cfg.StateDir = "https://127.0.0.1:1", "east", t.TempDir()
	cfg.Kubeconfig = kubeconfigFor(t, apiserver.URL)
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	host := &statusHost{}
	if err := ext.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e := host.last()
		if e != nil && e.Status() == componentstatus.StatusRecoverableError &&
			strings.Contains(e.Err().Error(), "cannot read the work records in namespace fleetpulse-agent") &&
			strings.Contains(e.Err().Error(), "forbidden") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recoverable error naming the records; last status %+v", e)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// A kubeconfig that cannot be read fails Start, naming the file.
func TestStartWithoutKubeconfig(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Endpoint, cfg.ClusterName, cfg.Kubeconfig = "https://127.0.0.1:1", "east", "testdata/missing.kubeconfig"
	ext, err := NewFactory().Create(context.Background(), extensiontest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), &statusHost{}); err == nil || !strings.Contains(err.Error(), "missing.kubeconfig") {
		t.Errorf("Start = %v, want the kubeconfig named", err)
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed start: %v", err)
	}
}

// The counts are published under their names, one series per label set
// from the start (zeros included).
func TestCountsPublished(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { _ = tel.Shutdown(context.Background()) }()
	cfg := createDefaultConfig()
	ext, err := newExtension(cfg, metadatatest.NewSettings(tel), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.publish(); err != nil {
		t.Fatal(err)
	}
	defer ext.telemetry.Shutdown()
	opts := []metricdatatest.Option{metricdatatest.IgnoreTimestamp()}
	point := func(kv ...attribute.KeyValue) metricdata.DataPoint[int64] {
		return metricdata.DataPoint[int64]{Attributes: attribute.NewSet(kv...)}
	}
	result := func(r string) attribute.KeyValue { return attribute.String("result", r) }
	request := func(r string) attribute.KeyValue { return attribute.String("request", r) }
	metadatatest.AssertEqualAgentWorkApplies(t, tel, []metricdata.DataPoint[int64]{point(result("ok")), point(result("error"))}, opts...)
	metadatatest.AssertEqualAgentWorkHubRequests(t, tel, []metricdata.DataPoint[int64]{
		point(request("list"), result("ok")), point(request("list"), result("error")),
		point(request("status"), result("ok")), point(request("status"), result("error")),
	}, opts...)
	metadatatest.AssertEqualAgentWorkDrifts(t, tel, []metricdata.DataPoint[int64]{point()}, opts...)
	metadatatest.AssertEqualAgentWorkWorks(t, tel, []metricdata.DataPoint[int64]{point()}, opts...)
}
