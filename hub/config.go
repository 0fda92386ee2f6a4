package hub

import (
	"errors"
	"fmt"
	"net"
	"time"
)

// Config is the hub's configuration. DefaultConfig gives the defaults.
type Config struct {
	// HTTPListenAddress serves users' tools and the operational endpoints.
	HTTPListenAddress string
	// ShutdownTimeout bounds a graceful shutdown.
	ShutdownTimeout time.Duration
}

// DefaultConfig returns the hub's defaults: loopback only, so a hub started
// by hand exposes nothing until told to.
func DefaultConfig() Config {
	return Config{
		HTTPListenAddress: "127.0.0.1:9090",
		ShutdownTimeout:   30 * time.Second,
	}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPListenAddress); err != nil {
		errs = append(errs, fmt.Errorf("http listen address %q: %w", c.HTTPListenAddress, err))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown timeout must be positive, got %s", c.ShutdownTimeout))
	}
	return errors.Join(errs...)
}
