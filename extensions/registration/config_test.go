package registration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"
	"go.opentelemetry.io/collector/confmap/xconfmap"

	"github.com/fleetpulse/fleetpulse/extensions/registration/internal/metadata"
)

const testHash = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

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
			Endpoint: "https://hub.example:8443", ClusterName: "prod-eu-1",
			StateDir: "/var/lib/fleetpulse-agent", HeartbeatPeriod: 30 * time.Second,
		}},
		{component.NewIDWithName(metadata.Type, "all"), &Config{
			Endpoint: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: "/data/agent",
			BootstrapToken: "abcdef.0123456789abcdef", HubCAHash: testHash, HubCAFile: "/etc/fleetpulse/hub-ca.crt",
			Kubeconfig: "/etc/fleetpulse/kubeconfig", HeartbeatPeriod: 10 * time.Second,
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
		c.Endpoint, c.ClusterName, c.BootstrapToken, c.HubCAHash = "https://hub:8443", "east", "abcdef.0123456789abcdef", testHash
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tt := range []struct {
		name   string
		change func(*Config)
		want   []string
	}{
		{"no endpoint", func(c *Config) { c.Endpoint = "" }, []string{`"endpoint" ""`}},
		{"plain http", func(c *Config) { c.Endpoint = "http://hub:8443" }, []string{`"endpoint" "http://hub:8443": want the https://`}},
		{"bad cluster name", func(c *Config) { c.ClusterName = "East_1" }, []string{`"cluster_name" "East_1"`}},
		{"no state dir", func(c *Config) { c.StateDir = "" }, []string{`"state_dir" is required`}},
		{"malformed pin", func(c *Config) { c.HubCAHash = "md5:00" }, []string{`"hub_ca_hash" "md5:00": want sha256:<64 hex digits>`}},
		{"token without a way to verify the hub", func(c *Config) { c.HubCAHash = "" }, []string{`"bootstrap_token" needs "hub_ca_hash" or "hub_ca_file"`}},
		{"token with white space", func(c *Config) { c.BootstrapToken = "abc def" }, []string{`"bootstrap_token" holds white space`}},
		{"no heartbeat period", func(c *Config) { c.HeartbeatPeriod = 0 }, []string{`"heartbeat_period" must be positive`}},
		{"everything at once", func(c *Config) { c.Endpoint, c.ClusterName, c.StateDir, c.HubCAHash = "", "", "", "x" },
			[]string{`"endpoint"`, `"cluster_name"`, `"state_dir"`, `"hub_ca_hash"`}},
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
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows the token: %v", err)
			}
		})
	}
}

// The token never shows in a printed configuration (the Collector's
// print-config marshals the typed configuration).
func TestTokenRedactedWhenPrinted(t *testing.T) {
	c := createDefaultConfig()
	c.BootstrapToken = "abcdef.0123456789abcdef"
	conf := confmap.New()
	if err := conf.Marshal(c); err != nil {
		t.Fatal(err)
	}
	if got := conf.Get("bootstrap_token"); got == "abcdef.0123456789abcdef" || got == nil {
		t.Errorf("bootstrap_token printed as %v", got)
	}
}
