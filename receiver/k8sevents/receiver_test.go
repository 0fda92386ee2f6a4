package k8sevents

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/extension/extensiontest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver/receivertest"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/receiver/internal/kubeapi"
	"github.com/fleetpulse/fleetpulse/receiver/k8sevents/internal/metadata"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestEachOccurrenceSentOnce creates events in a real cluster and checks the
// records sent, exactly: one per new event or new occurrence, none repeated
// by a restart on the same storage, and the new one after it.
func TestEachOccurrenceSentOnce(t *testing.T) {
	t.Parallel()
	c := testbed.StartClusters(t, "events", 1, testbed.ClusterOptions{})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	host, stopStorage := startStorage(t)
	defer stopStorage()
	storageID := component.NewID(component.MustNewType("file_storage"))

	cfg := testConfig(c.KubeconfigPath)
	cfg.StorageID = &storageID
	sink1 := new(consumertest.LogsSink)
	r1 := start(t, cfg, host, sink1)

	now := time.Now()
	for i, typ := range []string{corev1.EventTypeWarning, corev1.EventTypeNormal, corev1.EventTypeWarning} {
		createEvent(t, client, fmt.Sprintf("web-%d.1", i), typ, "BackOff", fmt.Sprintf("Back-off restarting container %d", i), now)
	}
	waitRecords(t, sink1, 3)
	rec := findRecord(sink1, "Back-off restarting container 0")
	if rec == nil {
		t.Fatal("no record for event web-0.1")
	}
	if rec.SeverityNumber() != plog.SeverityNumberWarn {
		t.Errorf("severity = %v, want Warn", rec.SeverityNumber())
	}
	for k, want := range map[string]string{"k8s.event.reason": "BackOff", "k8s.event.type": "Warning", "k8s.event.name": "web-0.1"} {
		if v, _ := rec.Attributes().Get(k); v.Str() != want {
			t.Errorf("attribute %s = %q, want %q", k, v.Str(), want)
		}
	}

	// A new occurrence of the same event is sent; nothing else is.
	ev, err := client.CoreV1().Events("default").Get(context.Background(), "web-1.1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev.Count = 2
	ev.LastTimestamp = metav1.NewTime(now.Add(2 * time.Second))
	if _, err := client.CoreV1().Events("default").Update(context.Background(), ev, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, sink1, 4)
	if err := r1.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A restart on the same storage lists every event again and sends none
	// of them; the event created after it is sent.
	sink2 := new(consumertest.LogsSink)
	r2 := start(t, cfg, host, sink2)
	defer func() { _ = r2.Shutdown(context.Background()) }()
	createEvent(t, client, "web-9.1", corev1.EventTypeNormal, "Pulled", "after the restart", now.Add(3*time.Second))
	waitRecords(t, sink2, 1)
	if rec := findRecord(sink2, "after the restart"); rec == nil || sink2.LogRecordCount() != 1 {
		t.Errorf("after restart: %d records, want only the new event's", sink2.LogRecordCount())
	}
}

func TestRateBoundDropsAndCounts(t *testing.T) {
	t.Parallel()
	c := testbed.StartClusters(t, "ratebound", 1, testbed.ClusterOptions{})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	cfg := testConfig(c.KubeconfigPath)
	cfg.MaxPerSecond, cfg.Burst = 0.001, 2
	sink := new(consumertest.LogsSink)
	r := start(t, cfg, nil, sink)
	defer func() { _ = r.Shutdown(context.Background()) }()
	now := time.Now()
	for i := range 5 {
		createEvent(t, client, fmt.Sprintf("storm-%d", i), corev1.EventTypeWarning, "Failed", "storm", now)
	}
	deadline := time.Now().Add(30 * time.Second)
	for r.sent.Load()+r.dropped.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if r.sent.Load() != 2 || r.dropped.Load() != 3 || sink.LogRecordCount() != 2 {
		t.Errorf("sent %d (sink %d), dropped %d; want 2 sent and 3 dropped", r.sent.Load(), sink.LogRecordCount(), r.dropped.Load())
	}
}

func TestEventsBeforeStartAreNotSentWithoutStorage(t *testing.T) {
	t.Parallel()
	c := testbed.StartClusters(t, "nostorage", 1, testbed.ClusterOptions{})[0]
	client := kubernetes.NewForConfigOrDie(c.RESTConfig)
	createEvent(t, client, "old.1", corev1.EventTypeNormal, "Old", "before the start", time.Now().Add(-time.Hour))
	sink := new(consumertest.LogsSink)
	r := start(t, testConfig(c.KubeconfigPath), nil, sink)
	defer func() { _ = r.Shutdown(context.Background()) }()
	createEvent(t, client, "new.1", corev1.EventTypeNormal, "New", "after the start", time.Now().Add(time.Second))
	waitRecords(t, sink, 1)
	if findRecord(sink, "before the start") != nil || sink.LogRecordCount() != 1 {
		t.Errorf("%d records, want only the event after the start", sink.LogRecordCount())
	}
}

func TestConfigValidate(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.MaxPerSecond, cfg.Burst, cfg.AuthType = 0, 0, "x"
	err := cfg.Validate()
	for _, want := range []string{`"max_per_second"`, `"burst"`, `"auth_type" "x"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

func testConfig(kubeconfig string) *Config {
	cfg := createDefaultConfig()
	cfg.Config = kubeapi.Config{AuthType: kubeapi.AuthKubeconfig, Kubeconfig: kubeconfig}
	return cfg
}

func start(t *testing.T, cfg *Config, host testHost, sink *consumertest.LogsSink) *eventsReceiver {
	t.Helper()
	set := receivertest.NewNopSettings(metadata.Type)
	set.ID = component.NewID(metadata.Type) // storage is keyed by the receiver's ID
	r, err := newReceiver(cfg, set, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return r
}

func createEvent(t *testing.T, client kubernetes.Interface, name, typ, reason, msg string, at time.Time) {
	t.Helper()
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: name, Namespace: "default"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: strings.Split(name, ".")[0], APIVersion: "v1"},
		Reason:         reason, Message: msg, Type: typ, Count: 1,
		FirstTimestamp: metav1.NewTime(at), LastTimestamp: metav1.NewTime(at),
		Source: corev1.EventSource{Component: "kubelet", Host: "node-1"},
	}
	if _, err := client.CoreV1().Events("default").Create(context.Background(), ev, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitRecords(t *testing.T, sink *consumertest.LogsSink, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for sink.LogRecordCount() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := sink.LogRecordCount(); got != n {
		t.Fatalf("%d log records, want %d", got, n)
	}
}

func findRecord(sink *consumertest.LogsSink, body string) *plog.LogRecord {
	for _, ld := range sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			sls := ld.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					if lr := lrs.At(k); lr.Body().Str() == body {
						return &lr
					}
				}
			}
		}
	}
	return nil
}

type testHost map[component.ID]component.Component

func (h testHost) GetExtensions() map[component.ID]component.Component { return h }

func startStorage(t *testing.T) (testHost, func()) {
	t.Helper()
	f := filestorage.NewFactory()
	cfg := f.CreateDefaultConfig().(*filestorage.Config)
	cfg.Directory = t.TempDir()
	ext, err := f.Create(context.Background(), extensiontest.NewNopSettings(f.Type()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	host := testHost{component.NewID(f.Type()): ext}
	if err := ext.Start(context.Background(), host); err != nil {
		t.Fatal(err)
	}
	return host, func() { _ = ext.Shutdown(context.Background()) }
}
