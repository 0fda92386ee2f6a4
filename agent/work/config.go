package work

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults.
const (
	DefaultNamespace    = "fleetpulse-agent"
	DefaultFieldManager = "fleetpulse-agent"
	DefaultSyncInterval = 30 * time.Second
	DefaultPollTimeout  = 30 * time.Second
)

// Config is what an Agent needs.
type Config struct {
	// Hub is the base URL of the hub's agents port (https).
	Hub string
	// ClusterName is the cluster's registered name, for events and logs.
	ClusterName string
	// StateDir holds the credentials registration keeps, in
	// StateDir/credentials.
	StateDir string
	// RESTConfig reaches the managed cluster. When nil, Kubeconfig is loaded
	// (empty: the in-cluster configuration).
	RESTConfig *rest.Config
	Kubeconfig string
	// Namespace holds the agent's records of what each work applied, one
	// ConfigMap per work, on the managed cluster.
	Namespace string
	// FieldManager is the server-side-apply field manager.
	FieldManager string
	// SyncInterval is how often every work is applied again (drift is also
	// caught at once through watches of the applied objects).
	SyncInterval time.Duration
	// PollTimeout is how long one list call may wait for a change.
	PollTimeout time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Stats counts applies, drifts and hub requests; nil counts into a
	// Stats of the Agent's own.
	Stats *Stats
	// ReportHealth, when set, hears what keeps the agent from doing its
	// job while it retries (its records cannot be read, the hub cannot be
	// listed, a status cannot be reported), and nil once nothing does. A
	// work whose manifests fail to apply is not the agent's trouble: the
	// work's own status says so at the hub.
	ReportHealth func(error)
}

// Validate returns every problem.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.Hub); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("hub %q: want an https:// URL", c.Hub))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("the state folder (with registration's credentials) is required"))
	}
	if c.SyncInterval < 0 || c.PollTimeout < 0 {
		errs = append(errs, fmt.Errorf("sync interval %s and poll timeout %s must not be negative", c.SyncInterval, c.PollTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = DefaultNamespace
	}
	if c.FieldManager == "" {
		c.FieldManager = DefaultFieldManager
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.PollTimeout == 0 {
		c.PollTimeout = DefaultPollTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// restConfig returns the managed cluster's REST configuration.
func (c Config) restConfig() (*rest.Config, error) {
	if c.RESTConfig != nil {
		return rest.CopyConfig(c.RESTConfig), nil
	}
	if c.Kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (no kubeconfig given): %w", err)
		}
		return rc, nil
	}
	if _, err := os.Stat(c.Kubeconfig); err != nil {
		return nil, fmt.Errorf("kubeconfig %q: %w", c.Kubeconfig, err)
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: c.Kubeconfig}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %q: %w", c.Kubeconfig, err)
	}
	return rc, nil
}
