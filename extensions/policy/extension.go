package policy

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"

	agentpolicy "github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/policy/remote"
	"github.com/fleetpulse/fleetpulse/extensions/internal/controller"
)

type policyExtension struct {
	cfg    *Config
	set    extension.Settings
	runner *controller.Runner
}

var (
	_ extensioncapabilities.Dependent       = (*policyExtension)(nil)
	_ extensioncapabilities.PipelineWatcher = (*policyExtension)(nil)
)

func newExtension(cfg *Config, set extension.Settings, stop func(error)) *policyExtension {
	return &policyExtension{cfg: cfg, set: set, runner: controller.NewRunner(set.ID, stop)}
}

// Dependencies makes the Collector start the registration first.
func (e *policyExtension) Dependencies() []component.ID {
	if id, err := e.cfg.registrationID(); err == nil && id != nil {
		return []component.ID{*id}
	}
	return nil
}

// Start builds the hub's side and the engine, and runs both in the
// background: the poll of the hub, and the engine evaluating what it lists.
func (e *policyExtension) Start(_ context.Context, host component.Host) error {
	log := controller.Logger(e.set.Logger)
	hub, err := remote.New(remote.Config{
		Hub: e.cfg.Endpoint, StateDir: e.cfg.StateDir, ClusterName: e.cfg.ClusterName, PollTimeout: e.cfg.PollTimeout,
		Logger: log, ReportHealth: e.runner.ReportHealth,
	})
	if err != nil {
		return fmt.Errorf("policy controller: %w", err)
	}
	engine, err := agentpolicy.New(agentpolicy.Config{
		ClusterName: e.cfg.ClusterName, Kubeconfig: e.cfg.Kubeconfig, Source: hub, Sink: hub,
		MeterProvider: e.set.MeterProvider, Logger: log, FieldManager: e.cfg.FieldManager, Workers: e.cfg.Workers,
	})
	if err != nil {
		return fmt.Errorf("policy controller: %w", err)
	}
	e.runner.Go(host, func(ctx context.Context) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		polled := make(chan error, 1)
		go func() { polled <- hub.Run(ctx) }()
		err := engine.Run(ctx)
		cancel()
		return errors.Join(err, <-polled)
	})
	return nil
}

// Ready reports the controller's health again once the Collector runs.
func (e *policyExtension) Ready() error {
	e.runner.Ready()
	return nil
}

// NotReady is part of the Collector's PipelineWatcher; nothing to do.
func (*policyExtension) NotReady() error { return nil }

// Shutdown stops the controller and waits for it.
func (e *policyExtension) Shutdown(ctx context.Context) error { return e.runner.Shutdown(ctx) }
