package policy

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"

	"github.com/fleetpulse/fleetpulse/extensions/policy/internal/metadata"
)

// Option changes how the factory's extensions run.
type Option func(*options)

type options struct{ stop func(error) }

// WithStop gives the extensions a way to stop the agent when the work applier
// ends with an error, for Collectors that do not stop on an extension's
// fatal status (v0.142 does not).
func WithStop(stop func(error)) Option { return func(o *options) { o.stop = stop } }

// NewFactory returns the factory of the fleetpulse_policy extension.
func NewFactory(opts ...Option) extension.Factory {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return extension.NewFactory(metadata.Type,
		func() component.Config { return createDefaultConfig() },
		func(_ context.Context, set extension.Settings, cfg component.Config) (extension.Extension, error) {
			return newExtension(cfg.(*Config), set, o.stop), nil
		},
		metadata.ExtensionStability)
}
