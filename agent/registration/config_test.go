package registration

import (
	"strings"
	"testing"
)

func TestConfigValidateNamesTheFlags(t *testing.T) {
	pin := "sha256:" + strings.Repeat("ab", 32)
	ok := Config{Hub: "https://hub.example:8443", ClusterName: "prod-eu-1", StateDir: "/var/lib/fleetpulse-agent",
		BootstrapToken: "abcdef.0123456789abcdef", CAHash: pin, Cluster: &fakeCluster{}}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // empty: valid
	}{
		{"valid with a pin", func(*Config) {}, nil},
		{"valid with a CA file", func(c *Config) { c.CAHash, c.CAFile = "", "/etc/hub-ca.crt" }, nil},
		{"valid upper-case pin", func(c *Config) { c.CAHash = "sha256:" + strings.Repeat("AB", 32) }, nil},
		{"valid without a token (stored credentials)", func(c *Config) { c.BootstrapToken, c.CAHash = "", "" }, nil},
		{"token without hub", func(c *Config) { c.Hub = "" }, []string{"--bootstrap-token needs --hub"}},
		{"plain http hub", func(c *Config) { c.Hub = "http://hub:8443" }, []string{`--hub "http://hub:8443": registration needs an https:// URL`}},
		{"hash without prefix", func(c *Config) { c.CAHash = strings.Repeat("ab", 32) }, []string{"--hub-ca-hash", "want sha256:<64 hex digits>"}},
		{"hash too short", func(c *Config) { c.CAHash = "sha256:abcd" }, []string{"--hub-ca-hash"}},
		{"hash not hex", func(c *Config) { c.CAHash = "sha256:" + strings.Repeat("zz", 32) }, []string{"--hub-ca-hash"}},
		{"token without a way to verify the hub", func(c *Config) { c.CAHash = "" }, []string{"--bootstrap-token needs --hub-ca-hash (or --hub-ca-file)"}},
		{"bad cluster name", func(c *Config) { c.ClusterName = "Prod_EU" }, []string{"--cluster-name"}},
		{"no state dir", func(c *Config) { c.StateDir = "" }, []string{"--state-dir"}},
		{"token with a newline", func(c *Config) { c.BootstrapToken = "abcdef.0123456789abcdef\n" }, []string{"--bootstrap-token holds white space"}},
		{"everything wrong at once", func(c *Config) { c.Hub, c.CAHash, c.StateDir = "", "md5:00", "" }, []string{"--hub", "--hub-ca-hash", "--state-dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to say %q", err, w)
				}
			}
			if c.BootstrapToken != "" && strings.Contains(err.Error(), strings.TrimSpace(c.BootstrapToken)) {
				t.Errorf("the error quotes the token: %q", err)
			}
		})
	}
}
