package work

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/confmap/xconfmap"
	"go.opentelemetry.io/collector/extension/extensiontest"

	"github.com/fleetpulse/fleetpulse/extensions/work/internal/metadata"
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
			Namespace: "fleetpulse-agent", FieldManager: "fleetpulse-agent", SyncInterval: 30 * time.Second,
			PollTimeout: 30 * time.Second, Registration: "fleetpulse_registration",
		}},
		{component.NewIDWithName(metadata.Type, "all"), &Config{
			Endpoint: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: "/data/agent",
			Kubeconfig: "/etc/fleetpulse/kubeconfig", Namespace: "fleet-work", FieldManager: "fleet",
			SyncInterval: time.Minute, PollTimeout: 10 * time.Second, Registration: "fleetpulse_registration/eu",
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

func TestValidate(t *testing.T) {
	valid := func() *Config {
		c := createDefaultConfig()
		c.Endpoint, c.ClusterName = "https://hub:8443", "east"
		return c
	}
	for _, tt := range []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"plain http", func(c *Config) { c.Endpoint = "http://hub:8443" }, []string{`"endpoint" "http://hub:8443"`}},
		{"bad cluster name", func(c *Config) { c.ClusterName = "" }, []string{`"cluster_name" ""`}},
		{"no state dir", func(c *Config) { c.StateDir = "" }, []string{`"state_dir" is required`}},
		{"bad namespace", func(c *Config) { c.Namespace = "Work_NS" }, []string{`"namespace" "Work_NS"`}},
		{"no field manager", func(c *Config) { c.FieldManager = "" }, []string{`"field_manager" is required`}},
		{"no sync interval", func(c *Config) { c.SyncInterval = 0 }, []string{`"sync_interval" must be positive`}},
		{"negative poll timeout", func(c *Config) { c.PollTimeout = -time.Second }, []string{`"poll_timeout" must be positive`}},
		{"bad registration", func(c *Config) { c.Registration = "not a type!" }, []string{`"registration" "not a type!"`}},
		{"everything at once", func(c *Config) { c.Endpoint, c.ClusterName, c.SyncInterval = "", "", 0 },
			[]string{`"endpoint"`, `"cluster_name"`, `"sync_interval"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.change(c)
			err := c.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestDependsOnTheRegistration(t *testing.T) {
	for reg, want := range map[string][]component.ID{
		"fleetpulse_registration":    {component.MustNewID("fleetpulse_registration")},
		"fleetpulse_registration/eu": {component.MustNewIDWithName("fleetpulse_registration", "eu")},
		"":                           nil,
	} {
		cfg := createDefaultConfig()
		cfg.Registration = reg
		ext, err := newExtension(cfg, extensiontest.NewNopSettings(metadata.Type), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := ext.Dependencies(); !slices.Equal(got, want) {
			t.Errorf("registration %q: dependencies %v, want %v", reg, got, want)
		}
	}
}
