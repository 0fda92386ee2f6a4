package collector

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestDefaultConfigIsValid renders the built-in pipelines and has the
// Collector validate them with every component's own Validate.
func TestDefaultConfigIsValid(t *testing.T) {
	y, err := DefaultConfig(AgentOptions{
		Hub: "https://hub.example:8443", ClusterName: "prod-eu-1", ClusterSet: "prod",
		Kubeconfig: "/etc/kubeconfig", StateDir: t.TempDir(), CollectionInterval: 30 * time.Second,
		CAFile: "/etc/ca.crt", CertFile: "/etc/tls.crt", KeyFile: "/etc/tls.key",
		MetricsAddr: "127.0.0.1:8888", SelfTelemetryAddr: "127.0.0.1:14318",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"k8s_inventory", "k8s_events", "cluster_name: prod-eu-1", "storage: file_storage", "cert_file: /etc/tls.crt", "otlp/self", "endpoint: http://127.0.0.1:14318", "protocol: rw2"} {
		if !strings.Contains(y, want) {
			t.Errorf("default config lacks %q:\n%s", want, y)
		}
	}
	if err := newCollector(t, "yaml:"+y).DryRun(context.Background()); err != nil {
		t.Fatalf("default config does not validate: %v\n%s", err, y)
	}
}

func TestAgentOptionsNameTheFlags(t *testing.T) {
	err := AgentOptions{Hub: "hub:8443", ClusterName: "Bad_Name", CertFile: "x"}.Validate()
	for _, want := range []string{"--hub", "--cluster-name", "--state-dir", "--cert-file and --key-file", "--collection-interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to name %s", err, want)
		}
	}
}

// TestDefaultConfigReloadsTheClientCertificate: with a client certificate
// (static or from registration) the exporter re-reads it, so a renewal
// needs no restart; extra extensions are configured and run.
func TestDefaultConfigReloadsTheClientCertificate(t *testing.T) {
	y, err := DefaultConfig(AgentOptions{
		Hub: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: t.TempDir(), CollectionInterval: 30 * time.Second,
		CAFile: "/state/credentials/ca.crt", CertFile: "/state/credentials/tls.crt", KeyFile: "/state/credentials/tls.key",
		MetricsAddr: "127.0.0.1:8888", Extensions: map[string]any{"zpages": map[string]any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reload_interval: 1m0s", "cert_file: /state/credentials/tls.crt", "zpages: {}", "extensions:\n  - file_storage\n  - zpages\n"} {
		if !strings.Contains(y, want) {
			t.Errorf("default config lacks %q:\n%s", want, y)
		}
	}
	if err := newCollector(t, "yaml:"+y).DryRun(context.Background()); err != nil {
		t.Fatalf("default config does not validate: %v\n%s", err, y)
	}

	y, err = DefaultConfig(AgentOptions{Hub: "http://127.0.0.1:9090", ClusterName: "a", StateDir: t.TempDir(), CollectionInterval: time.Second, MetricsAddr: "127.0.0.1:8888"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(y, "reload_interval") {
		t.Errorf("reload_interval without a client certificate:\n%s", y)
	}
}
