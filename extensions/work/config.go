package work

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/component"
	"k8s.io/apimachinery/pkg/util/validation"

	agentwork "github.com/fleetpulse/fleetpulse/agent/work"
)

// Config is the extension's configuration.
type Config struct {
	// Endpoint is the base URL of the hub's agents port (https).
	Endpoint string `mapstructure:"endpoint"`
	// ClusterName is the cluster's registered name, for events and logs.
	ClusterName string `mapstructure:"cluster_name"`
	// StateDir holds the credentials the registration keeps, in
	// StateDir/credentials.
	StateDir string `mapstructure:"state_dir"`
	// Kubeconfig reaches the cluster the works are applied to; empty means
	// in-cluster.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// Namespace holds the applier's records of what each work applied, one
	// ConfigMap per work, on the cluster.
	Namespace string `mapstructure:"namespace"`
	// FieldManager is the server-side-apply field manager.
	FieldManager string `mapstructure:"field_manager"`
	// SyncInterval is how often every work is applied again (drift is also
	// caught at once through watches of the applied objects).
	SyncInterval time.Duration `mapstructure:"sync_interval"`
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
		Namespace:    agentwork.DefaultNamespace,
		FieldManager: agentwork.DefaultFieldManager,
		SyncInterval: agentwork.DefaultSyncInterval,
		PollTimeout:  agentwork.DefaultPollTimeout,
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
	if msgs := validation.IsDNS1123Label(c.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf(`"namespace" %q: %s`, c.Namespace, strings.Join(msgs, "; ")))
	}
	if c.FieldManager == "" {
		errs = append(errs, errors.New(`"field_manager" is required`))
	}
	if c.SyncInterval <= 0 {
		errs = append(errs, fmt.Errorf(`"sync_interval" must be positive, got %s`, c.SyncInterval))
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
