// Package selftelemetry publishes what an agent component counts (in
// atomics, whether or not a Collector runs) in the Collector's own
// telemetry, through an extension that does nothing else: the agent's
// metrics address serves it and the self-telemetry pipeline pushes it to
// the hub with the rest of the agent's metrics.
package selftelemetry

import (
	"context"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/otel/metric"
)

// Register creates a component's observable instruments on m and registers
// the callback that observes them.
type Register func(m metric.Meter) (metric.Registration, error)

type config struct{}

// NewFactory returns the factory of an extension of type typ, which takes no
// settings and, while it runs, publishes what register registers on the
// meter of the named instrumentation scope.
func NewFactory(typ component.Type, scope string, register Register) extension.Factory {
	return extension.NewFactory(typ,
		func() component.Config { return &config{} },
		func(_ context.Context, set extension.Settings, _ component.Config) (extension.Extension, error) {
			return &publisher{meter: set.MeterProvider.Meter(scope), register: register}, nil
		},
		component.StabilityLevelDevelopment)
}

type publisher struct {
	meter    metric.Meter
	register Register
	reg      metric.Registration
}

func (p *publisher) Start(context.Context, component.Host) error {
	reg, err := p.register(p.meter)
	if err != nil {
		return err
	}
	p.reg = reg
	return nil
}

func (p *publisher) Shutdown(context.Context) error {
	if p.reg == nil {
		return nil
	}
	err := p.reg.Unregister()
	p.reg = nil
	return err
}
