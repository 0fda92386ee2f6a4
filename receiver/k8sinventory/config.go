package k8sinventory

import (
	"errors"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/collector/scraper/scraperhelper"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Ways to reach the Kubernetes API.
const (
	// AuthServiceAccount uses the pod's service account (in-cluster config).
	AuthServiceAccount = "serviceAccount"
	// AuthKubeconfig uses a kubeconfig file.
	AuthKubeconfig = "kubeConfig"
)

// Config is the receiver's configuration.
type Config struct {
	scraperhelper.ControllerConfig `mapstructure:",squash"`

	// AuthType is serviceAccount (in-cluster) or kubeConfig.
	AuthType string `mapstructure:"auth_type"`
	// Kubeconfig is the kubeconfig file for auth_type kubeConfig; empty means
	// $KUBECONFIG, then ~/.kube/config.
	Kubeconfig string `mapstructure:"kubeconfig"`
	// Context is the kubeconfig context; empty means the current one.
	Context string `mapstructure:"context"`
	// PodMetrics turns on one k8s.pod.status.phase series per pod. Off by
	// default: per-cluster pod counts by namespace and phase cover fleet views
	// at a cardinality bounded by namespaces.
	PodMetrics bool `mapstructure:"pod_metrics"`
	// ResyncPeriod is the informers' resync period; 0 turns resync off.
	ResyncPeriod time.Duration `mapstructure:"resync_period"`
	// InitialSyncTimeout bounds how long start waits for the first full list
	// of every watched kind; past it the receiver starts anyway and retries.
	InitialSyncTimeout time.Duration `mapstructure:"initial_sync_timeout"`

	_ struct{}
}

func createDefaultConfig() *Config {
	cc := scraperhelper.NewDefaultControllerConfig()
	cc.CollectionInterval = 30 * time.Second
	cc.InitialDelay = 0
	return &Config{ControllerConfig: cc, AuthType: AuthServiceAccount, InitialSyncTimeout: 10 * time.Second}
}

// Validate returns every problem with the configuration.
func (c *Config) Validate() error {
	errs := []error{c.ControllerConfig.Validate()}
	switch c.AuthType {
	case AuthServiceAccount:
		if c.Kubeconfig != "" {
			errs = append(errs, fmt.Errorf(`"kubeconfig" is set but "auth_type" is %q; use auth_type %q`, c.AuthType, AuthKubeconfig))
		}
	case AuthKubeconfig:
	default:
		errs = append(errs, fmt.Errorf(`"auth_type" %q: want %q or %q`, c.AuthType, AuthServiceAccount, AuthKubeconfig))
	}
	if c.InitialSyncTimeout < 0 {
		errs = append(errs, fmt.Errorf(`"initial_sync_timeout" must not be negative, got %s`, c.InitialSyncTimeout))
	}
	if c.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf(`"resync_period" must not be negative, got %s`, c.ResyncPeriod))
	}
	return errors.Join(errs...)
}

// restConfig builds the client configuration the settings ask for.
func (c *Config) restConfig() (*rest.Config, error) {
	if c.AuthType == AuthServiceAccount {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config (auth_type %s): %w", AuthServiceAccount, err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if c.Kubeconfig != "" {
		if _, err := os.Stat(c.Kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %q: %w", c.Kubeconfig, err)
		}
		rules.ExplicitPath = c.Kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: c.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	return rc, nil
}
