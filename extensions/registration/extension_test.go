package registration

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/extensions/registration/internal/metadatatest"
)

func testConfig(t *testing.T) *Config {
	c := createDefaultConfig()
	c.Endpoint, c.ClusterName, c.StateDir = "https://127.0.0.1:1", "east", t.TempDir()
	c.Kubeconfig = "testdata/unreachable.kubeconfig"
	return c
}

// Without stored credentials and without a token the agent cannot join:
// Start says so, and leaves nothing running or published.
func TestStartWithoutCredentialsOrToken(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { _ = tel.Shutdown(context.Background()) }()
	cfg := testConfig(t)
	ext, err := NewFactory().Create(context.Background(), metadatatest.NewSettings(tel), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = ext.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "no credentials in "+cfg.StateDir) || !strings.Contains(err.Error(), "bootstrap token") {
		t.Fatalf("Start = %v, want no credentials and no bootstrap token", err)
	}
	if _, err := tel.GetMetric("fleetpulse.agent.heartbeats"); err == nil {
		t.Error("the registration's counts are still published after a failed start")
	}
	if err := ext.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown after a failed start: %v", err)
	}
}

// A kubeconfig that cannot be read fails Start, naming the file.
func TestStartWithoutKubeconfig(t *testing.T) {
	cfg := testConfig(t)
	cfg.Kubeconfig = "testdata/missing.kubeconfig"
	ext, err := NewFactory().Create(context.Background(), metadatatest.NewSettings(componenttest.NewTelemetry()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.Start(context.Background(), componenttest.NewNopHost()); err == nil || !strings.Contains(err.Error(), "missing.kubeconfig") {
		t.Errorf("Start = %v, want the kubeconfig named", err)
	}
}

// The counts are published under their names, one series per result from
// the start (zeros included), so rates work from the first scrape.
func TestCountsPublished(t *testing.T) {
	tel := componenttest.NewTelemetry()
	defer func() { _ = tel.Shutdown(context.Background()) }()
	ext, err := newExtension(testConfig(t), metadatatest.NewSettings(tel), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.publish(); err != nil {
		t.Fatal(err)
	}
	defer ext.telemetry.Shutdown()
	zeros := func(results []string) []metricdata.DataPoint[int64] {
		var dps []metricdata.DataPoint[int64]
		for _, r := range results {
			dps = append(dps, metricdata.DataPoint[int64]{Attributes: attribute.NewSet(attribute.String("result", r))})
		}
		return dps
	}
	opts := []metricdatatest.Option{metricdatatest.IgnoreTimestamp()}
	metadatatest.AssertEqualAgentHeartbeats(t, tel, zeros(agentreg.HeartbeatResults), opts...)
	metadatatest.AssertEqualAgentCertificateRenewals(t, tel, zeros(agentreg.RenewalResults), opts...)
	metadatatest.AssertEqualAgentRegistrations(t, tel, zeros(agentreg.RegistrationResults), opts...)
	// No certificate yet: no expiry.
	if m, err := tel.GetMetric("fleetpulse.agent.certificate.expiry_timestamp"); err == nil {
		t.Errorf("expiry published without a certificate: %+v", m)
	}
}
