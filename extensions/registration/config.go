package registration

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/configopaque"
	"k8s.io/apimachinery/pkg/util/validation"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
)

// Config is the extension's configuration.
type Config struct {
	// Endpoint is the base URL of the hub's agents port (https).
	Endpoint string `mapstructure:"endpoint"`
	// ClusterName is the name the cluster registers under.
	ClusterName string `mapstructure:"cluster_name"`
	// StateDir holds the credentials, in StateDir/credentials: the hub
	// exporter's tls::cert_file, key_file and ca_file point there.
	StateDir string `mapstructure:"state_dir"`
	// BootstrapToken authorizes joining; needed only when StateDir holds no
	// usable credentials. Printed configurations show it redacted; prefer
	// ${env:FLEETPULSE_BOOTSTRAP_TOKEN} to writing it into a file.
	BootstrapToken configopaque.String `mapstructure:"bootstrap_token"`
	// HubCAHash pins the hub's CA when joining: sha256:<hex of the SHA-256
	// of the CA's SubjectPublicKeyInfo>.
	HubCAHash string `mapstructure:"hub_ca_hash"`
	// HubCAFile is a PEM bundle that verifies the hub when joining, instead
	// of (or as well as) HubCAHash.
	HubCAFile string `mapstructure:"hub_ca_file"`
	// Kubeconfig reaches the cluster, whose identity and apiserver health
	// the agent reports; empty means in-cluster.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// HeartbeatPeriod is the period until the hub names one.
	HeartbeatPeriod time.Duration `mapstructure:"heartbeat_period"`

	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{StateDir: "/var/lib/fleetpulse-agent", HeartbeatPeriod: agentreg.DefaultHeartbeatPeriod}
}

// Validate returns every problem, naming the settings.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Endpoint); c.Endpoint == "" || err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf(`"endpoint" %q: want the https:// URL of the hub's agents port`, c.Endpoint))
	}
	if msgs := validation.IsDNS1123Label(c.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf(`"cluster_name" %q: %s`, c.ClusterName, strings.Join(msgs, "; ")))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New(`"state_dir" is required: the credentials are kept there`))
	}
	if c.HubCAHash != "" {
		if err := agentreg.CheckCAHash(c.HubCAHash); err != nil {
			errs = append(errs, fmt.Errorf(`"hub_ca_hash" %q: %w`, c.HubCAHash, err))
		}
	}
	if c.BootstrapToken != "" && c.HubCAHash == "" && c.HubCAFile == "" {
		errs = append(errs, errors.New(`"bootstrap_token" needs "hub_ca_hash" or "hub_ca_file" to verify the hub it sends the token to`))
	}
	if strings.ContainsAny(string(c.BootstrapToken), " \t\r\n") {
		errs = append(errs, errors.New(`"bootstrap_token" holds white space`))
	}
	if c.HeartbeatPeriod <= 0 {
		errs = append(errs, fmt.Errorf(`"heartbeat_period" must be positive, got %s`, c.HeartbeatPeriod))
	}
	return errors.Join(errs...)
}
