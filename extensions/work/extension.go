package work

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentwork "github.com/fleetpulse/fleetpulse/agent/work"
	"github.com/fleetpulse/fleetpulse/extensions/internal/controller"
	"github.com/fleetpulse/fleetpulse/extensions/work/internal/metadata"
)

type workExtension struct {
	cfg       *Config
	set       extension.Settings
	stats     *agentwork.Stats
	telemetry *metadata.TelemetryBuilder
	runner    *controller.Runner
}

var (
	_ extensioncapabilities.Dependent       = (*workExtension)(nil)
	_ extensioncapabilities.PipelineWatcher = (*workExtension)(nil)
)

func newExtension(cfg *Config, set extension.Settings, stop func(error)) (*workExtension, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create the work applier's telemetry: %w", err)
	}
	return &workExtension{cfg: cfg, set: set, stats: agentwork.NewStats(), telemetry: tb, runner: controller.NewRunner(set.ID, stop)}, nil
}

// Dependencies makes the Collector start the registration first.
func (e *workExtension) Dependencies() []component.ID {
	if id, err := e.cfg.registrationID(); err == nil && id != nil {
		return []component.ID{*id}
	}
	return nil
}

// Start builds the applier and runs it in the background.
func (e *workExtension) Start(_ context.Context, host component.Host) error {
	agent, err := agentwork.New(agentwork.Config{
		Hub: e.cfg.Endpoint, ClusterName: e.cfg.ClusterName, StateDir: e.cfg.StateDir, Kubeconfig: e.cfg.Kubeconfig,
		Namespace: e.cfg.Namespace, FieldManager: e.cfg.FieldManager,
		SyncInterval: e.cfg.SyncInterval, PollTimeout: e.cfg.PollTimeout,
		Logger: controller.Logger(e.set.Logger), Stats: e.stats, ReportHealth: e.runner.ReportHealth,
	})
	if err != nil {
		return fmt.Errorf("work applier: %w", err)
	}
	if err := e.publish(); err != nil {
		return err
	}
	e.runner.Go(host, agent.Run)
	return nil
}

// Ready reports the controller's health again once the Collector runs.
func (e *workExtension) Ready() error {
	e.runner.Ready()
	return nil
}

// NotReady is part of the Collector's PipelineWatcher; nothing to do.
func (*workExtension) NotReady() error { return nil }

// Shutdown stops the applier and waits for it.
func (e *workExtension) Shutdown(ctx context.Context) error {
	err := e.runner.Shutdown(ctx)
	e.telemetry.Shutdown()
	return err
}

// publish observes the applier's counts in the Collector's telemetry.
func (e *workExtension) publish() error {
	tb, s := e.telemetry, e.stats
	err := tb.RegisterAgentWorkAppliesCallback(func(_ context.Context, o metric.Int64Observer) error {
		for _, r := range agentwork.Results {
			o.Observe(s.Applies(r), metric.WithAttributes(attribute.String("result", r)))
		}
		return nil
	})
	if err == nil {
		err = tb.RegisterAgentWorkHubRequestsCallback(func(_ context.Context, o metric.Int64Observer) error {
			for _, req := range []string{agentwork.RequestList, agentwork.RequestStatus} {
				for _, r := range agentwork.Results {
					o.Observe(s.HubRequests(req, r), metric.WithAttributes(attribute.String("request", req), attribute.String("result", r)))
				}
			}
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterAgentWorkDriftsCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(s.Drifts())
			return nil
		})
	}
	if err == nil {
		err = tb.RegisterAgentWorkWorksCallback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(s.Works())
			return nil
		})
	}
	if err != nil {
		tb.Shutdown()
		return fmt.Errorf("publish the work applier's counts: %w", err)
	}
	return nil
}
