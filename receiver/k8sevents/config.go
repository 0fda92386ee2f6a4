package k8sevents

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"

	"github.com/fleetpulse/fleetpulse/receiver/internal/kubeapi"
)

// Config is the receiver's configuration.
type Config struct {
	// Config says how to reach the apiserver: auth_type, kubeconfig, context.
	kubeapi.Config `mapstructure:",squash"`
	// Namespaces limits the watch; empty means every namespace.
	Namespaces []string `mapstructure:"namespaces"`
	// MaxPerSecond and Burst bound the event rate sent; over it events are
	// dropped and counted.
	MaxPerSecond float64 `mapstructure:"max_per_second"`
	Burst        int     `mapstructure:"burst"`
	// StorageID names a storage extension (e.g. file_storage) in which the
	// last event sent is remembered across restarts.
	StorageID *component.ID `mapstructure:"storage"`

	_ struct{}
}

func createDefaultConfig() *Config {
	return &Config{Config: kubeapi.Config{AuthType: kubeapi.AuthServiceAccount}, MaxPerSecond: 100, Burst: 500}
}

// Validate returns every problem with the configuration.
func (c *Config) Validate() error {
	errs := []error{c.Config.Validate()}
	if c.MaxPerSecond <= 0 {
		errs = append(errs, fmt.Errorf(`"max_per_second" must be positive, got %v`, c.MaxPerSecond))
	}
	if c.Burst < 1 {
		errs = append(errs, fmt.Errorf(`"burst" must be at least 1, got %d`, c.Burst))
	}
	for _, ns := range c.Namespaces {
		if ns == "" {
			errs = append(errs, errors.New(`"namespaces" has an empty name`))
		}
	}
	return errors.Join(errs...)
}
