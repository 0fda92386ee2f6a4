package policy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"k8s.io/apimachinery/pkg/util/validation"

	agentpolicy "github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/policy/remote"
)

// Config is the extension's configuration.
type Config struct {
	// Endpoint is the base URL of the hub's agents port (https).
	Endpoint string `mapstructure:"endpoint"`
	// ClusterName is the cluster's registered name, the namespace of its
	// policy replicas on the hub.
	ClusterName string `mapstructure:"cluster_name"`
	// StateDir holds the credentials the registration keeps, in
	// StateDir/credentials.
	StateDir string `mapstructure:"state_dir"`
	// Kubeconfig reaches the cluster the policies are evaluated on; empty
	// means in-cluster.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// FieldManager is the server-side-apply field manager of enforcement.
	FieldManager string `mapstructure:"field_manager"`
	// Workers is how many policies are evaluated at once.
	Workers int `mapstructure:"workers"`
	// PollTimeout is how long one list call to the hub may wait for a
	// change.
	PollTimeout time.Duration `mapstructure:"poll_timeout"`
	// Registration is the ID of the extension that keeps the credentials
	// in StateDir, which the Collector then starts first; empty when the
	// credentials come from elsewhere.
	Registration string `mapstructure:"registration"`

	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{
		StateDir:     "/var/lib/fleetpulse-agent",
		FieldManager: agentpolicy.DefaultFieldManager,
		Workers:      agentpolicy.DefaultWorkers,
		PollTimeout:  remote.DefaultPollTimeout,
		Registration: "fleetpulse_registration",
	}
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
		errs = append(errs, errors.New(`"state_dir" is required: the registration's credentials are read there`))
	}
	if c.FieldManager == "" {
		errs = append(errs, errors.New(`"field_manager" is required`))
	}
	if c.Workers <= 0 {
		errs = append(errs, fmt.Errorf(`"workers" must be positive, got %d`, c.Workers))
	}
	if c.PollTimeout <= 0 {
		errs = append(errs, fmt.Errorf(`"poll_timeout" must be positive, got %s`, c.PollTimeout))
	}
	if _, err := c.registrationID(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// registrationID parses Registration; nil when it is empty.
func (c *Config) registrationID() (*component.ID, error) {
	if c.Registration == "" {
		return nil, nil
	}
	var id component.ID
	if err := id.UnmarshalText([]byte(c.Registration)); err != nil {
		return nil, fmt.Errorf(`"registration" %q: %w`, c.Registration, err)
	}
	return &id, nil
}
