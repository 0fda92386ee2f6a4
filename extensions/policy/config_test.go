package policy

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/confmap/xconfmap"

	"github.com/fleetpulse/fleetpulse/extensions/policy/internal/metadata"
)

func TestLoadConfig(t *testing.T) {
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		id   component.ID
		want *Config
	}{
		{component.NewID(metadata.Type), &Config{
			Endpoint: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: "/var/lib/fleetpulse-agent",
			FieldManager: "fleetpulse-policy", Workers: 4, PollTimeout: 30 * time.Second, Registration: "fleetpulse_registration",
		}},
		{component.NewIDWithName(metadata.Type, "all"), &Config{
			Endpoint: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: "/data/agent",
			Kubeconfig: "/etc/fleetpulse/kubeconfig", FieldManager: "fleet", Workers: 2, PollTimeout: 10 * time.Second,
			Registration: "fleetpulse_registration/eu",
		}},
	} {
		t.Run(tt.id.String(), func(t *testing.T) {
			sub, err := cm.Sub(tt.id.String())
			if err != nil {
				t.Fatal(err)
			}
			cfg := NewFactory().CreateDefaultConfig()
			if err := sub.Unmarshal(cfg); err != nil {
				t.Fatal(err)
			}
			if err := xconfmap.Validate(cfg); err != nil {
				t.Fatal(err)
			}
			if *cfg.(*Config) != *tt.want {
				t.Errorf("got %+v\nwant %+v", cfg, tt.want)
			}
		})
	}
}

// Every bad setting is named in one error.
func TestValidateNamesEverySetting(t *testing.T) {
	c := &Config{Endpoint: "http://hub", ClusterName: "East", Workers: -1, Registration: "bad id/"}
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{`"endpoint"`, `"cluster_name"`, `"state_dir"`, `"field_manager"`, `"workers"`, `"poll_timeout"`, `"registration"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}
