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
// needs no restart.
func TestDefaultConfigReloadsTheClientCertificate(t *testing.T) {
	y, err := DefaultConfig(AgentOptions{
		Hub: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: t.TempDir(), CollectionInterval: 30 * time.Second,
		CAFile: "/state/credentials/ca.crt", CertFile: "/state/credentials/tls.crt", KeyFile: "/state/credentials/tls.key",
		MetricsAddr: "127.0.0.1:8888",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reload_interval: 1m0s", "cert_file: /state/credentials/tls.crt", "extensions:\n  - file_storage\n"} {
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

// TestDefaultConfigRegisters: with a bootstrap token the registration, the
// work applier and the policy controller run, started before the pipelines, the exporter uses the
// credentials the registration keeps, and the configuration names the
// token's variable, never the token.
func TestDefaultConfigRegisters(t *testing.T) {
	const token = "abcdef.0123456789abcdef"
	t.Setenv("FLEETPULSE_BOOTSTRAP_TOKEN", token)
	state := t.TempDir()
	y, err := DefaultConfig(AgentOptions{
		Hub: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: state, Kubeconfig: "/etc/kubeconfig",
		CollectionInterval: 30 * time.Second, MetricsAddr: "127.0.0.1:8888", BootstrapToken: token,
		CAHash: "sha256:" + strings.Repeat("ab", 32), CAFile: "/etc/join-ca.crt",
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"fleetpulse_registration:", "fleetpulse_work:", "fleetpulse_policy:", "bootstrap_token: ${env:FLEETPULSE_BOOTSTRAP_TOKEN}",
		"hub_ca_hash: sha256:abab", "hub_ca_file: /etc/join-ca.crt",
		"cert_file: " + state + "/credentials/tls.crt", "ca_file: " + state + "/credentials/ca.crt",
		"extensions:\n  - file_storage\n  - fleetpulse_registration\n  - fleetpulse_work\n  - fleetpulse_policy\n",
	} {
		if !strings.Contains(y, want) {
			t.Errorf("default config lacks %q:\n%s", want, y)
		}
	}
	if strings.Contains(y, token) {
		t.Errorf("the default config holds the token:\n%s", y)
	}
	if err := newCollector(t, "yaml:"+y).DryRun(context.Background()); err != nil {
		t.Fatalf("default config does not validate: %v\n%s", err, y)
	}
}

func TestRegistrationFlagsChecked(t *testing.T) {
	err := AgentOptions{
		Hub: "http://hub:8443", ClusterName: "a", StateDir: "/s", CollectionInterval: time.Second, MetricsAddr: "127.0.0.1:1",
		BootstrapToken: "abc def", CertFile: "c", KeyFile: "k", CAHash: "md5:00",
	}.Validate()
	for _, want := range []string{
		"--bootstrap-token and --cert-file/--key-file exclude each other", `--hub "http://hub:8443": registration needs an https:// URL`,
		"--bootstrap-token holds white space", `--hub-ca-hash "md5:00"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
	err = AgentOptions{Hub: "https://hub:8443", ClusterName: "a", StateDir: "/s", CollectionInterval: time.Second, MetricsAddr: "127.0.0.1:1", BootstrapToken: "t"}.Validate()
	if err == nil || !strings.Contains(err.Error(), "--bootstrap-token needs --hub-ca-hash (or --hub-ca-file)") {
		t.Errorf("Validate() = %v, want the missing pin named", err)
	}
}
