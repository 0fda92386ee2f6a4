package k8sinventory

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/fleetpulse/fleetpulse/receiver/internal/kubeapi"
)

// Ways to reach the Kubernetes API.
const (
	AuthServiceAccount = kubeapi.AuthServiceAccount
	AuthKubeconfig     = kubeapi.AuthKubeconfig
)

// Config is the receiver's configuration.
type Config struct {
	scraperhelper.ControllerConfig `mapstructure:",squash"`
	// Config says how to reach the apiserver: auth_type, kubeconfig, context.
	kubeapi.Config `mapstructure:",squash"`

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
	return &Config{ControllerConfig: cc, Config: kubeapi.Config{AuthType: AuthServiceAccount}, InitialSyncTimeout: 10 * time.Second}
}

// Validate returns every problem with the configuration.
func (c *Config) Validate() error {
	errs := []error{c.ControllerConfig.Validate(), c.Config.Validate()}
	if c.InitialSyncTimeout < 0 {
		errs = append(errs, fmt.Errorf(`"initial_sync_timeout" must not be negative, got %s`, c.InitialSyncTimeout))
	}
	if c.ResyncPeriod < 0 {
		errs = append(errs, fmt.Errorf(`"resync_period" must not be negative, got %s`, c.ResyncPeriod))
	}
	return errors.Join(errs...)
}
