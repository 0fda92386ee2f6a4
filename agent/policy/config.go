package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Defaults.
const (
	DefaultFieldManager = "fleetpulse-policy"
	DefaultWorkers      = 4
	// DefaultCompliantInterval and DefaultNonCompliantInterval are how
	// often a policy is evaluated again, besides when the objects it names
	// change, when its evaluationInterval says nothing.
	DefaultCompliantInterval    = 10 * time.Minute
	DefaultNonCompliantInterval = 30 * time.Second
	// DefaultListTimeout bounds how long an evaluation waits for the first
	// list of a kind it has just started watching.
	DefaultListTimeout = 10 * time.Second
)

// Config is what an Engine needs.
type Config struct {
	// ClusterName names the cluster in logs.
	ClusterName string
	// RESTConfig reaches the managed cluster. When nil, Kubeconfig is loaded
	// (empty: the in-cluster configuration).
	RESTConfig *rest.Config
	Kubeconfig string
	// Source gives the policies to evaluate; Sink takes their status.
	Source Source
	Sink   StatusSink
	// MeterProvider receives the engine's metrics; nil discards them.
	MeterProvider metric.MeterProvider
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// FieldManager is the server-side-apply field manager of enforcement.
	FieldManager string
	// Workers is how many policies are evaluated at once.
	Workers int
	// ListTimeout bounds the wait for a newly watched kind's first list; an
	// evaluation that runs out of it reports the template Pending and runs
	// again once the list arrives.
	ListTimeout time.Duration
}

// Validate returns every problem.
func (c Config) Validate() error {
	var errs []error
	if c.Source == nil {
		errs = append(errs, errors.New("a policy source is required"))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("a status sink is required"))
	}
	if c.Workers < 0 || c.ListTimeout < 0 {
		errs = append(errs, fmt.Errorf("workers %d and list timeout %s must not be negative", c.Workers, c.ListTimeout))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.FieldManager == "" {
		c.FieldManager = DefaultFieldManager
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.ListTimeout == 0 {
		c.ListTimeout = DefaultListTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MeterProvider == nil {
		c.MeterProvider = noop.NewMeterProvider()
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
