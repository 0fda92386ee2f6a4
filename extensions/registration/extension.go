package registration

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/extensioncapabilities"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/extensions/internal/controller"
	"github.com/fleetpulse/fleetpulse/extensions/registration/internal/metadata"
)

type registrationExtension struct {
	cfg       *Config
	set       extension.Settings
	stats     *agentreg.Stats
	telemetry *metadata.TelemetryBuilder
	runner    *controller.Runner
}

var _ extensioncapabilities.PipelineWatcher = (*registrationExtension)(nil)

func newExtension(cfg *Config, set extension.Settings, stop func(error)) (*registrationExtension, error) {
	tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
	if err != nil {
		return nil, fmt.Errorf("create the registration's telemetry: %w", err)
	}
	return &registrationExtension{cfg: cfg, set: set, stats: agentreg.NewStats(), telemetry: tb, runner: controller.NewRunner(set.ID, stop)}, nil
}

// Start joins the hub, or checks the stored credentials with a first
// heartbeat, and then heartbeats and renews in the background. It returns
// only once the agent holds credentials, or with the error that keeps it
// from holding any (a refused token, a pin mismatch, ctx's end, ...).
func (e *registrationExtension) Start(ctx context.Context, host component.Host) error {
	if err := e.publish(); err != nil {
		return err
	}
	agent, err := e.newAgent()
	if err == nil {
		err = agent.Start(ctx)
	}
	if err != nil {
		e.telemetry.Shutdown()
		return err
	}
	e.runner.Go(host, agent.Run)
	return nil
}

func (e *registrationExtension) newAgent() (*agentreg.Agent, error) {
	userAgent := "fleetpulse-agent/" + e.set.BuildInfo.Version
	cluster, err := agentreg.NewKubeCluster(e.cfg.Kubeconfig, userAgent)
	if err != nil {
		return nil, err
	}
	return agentreg.New(agentreg.Config{
		Hub: e.cfg.Endpoint, ClusterName: e.cfg.ClusterName, StateDir: e.cfg.StateDir,
		BootstrapToken: string(e.cfg.BootstrapToken), CAHash: e.cfg.HubCAHash, CAFile: e.cfg.HubCAFile,
		AgentVersion: e.set.BuildInfo.Version, HeartbeatPeriod: e.cfg.HeartbeatPeriod, Cluster: cluster,
		Logger: controller.Logger(e.set.Logger), Stats: e.stats, ReportHealth: e.runner.ReportHealth,
	})
}

// Ready reports the controller's health again once the Collector runs.
func (e *registrationExtension) Ready() error {
	e.runner.Ready()
	return nil
}

// NotReady is part of the Collector's PipelineWatcher; nothing to do.
func (*registrationExtension) NotReady() error { return nil }

// Shutdown stops heartbeats and renewals. It returns the error that ended
// the registration, if one did (the cluster was deregistered, or the hub
// refuses the certificate).
func (e *registrationExtension) Shutdown(ctx context.Context) error {
	err := e.runner.Shutdown(ctx)
	e.telemetry.Shutdown()
	return err
}

// publish observes the registration's counts in the Collector's telemetry.
func (e *registrationExtension) publish() error {
	byResult := func(results []string, count func(string) int64) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			for _, r := range results {
				o.Observe(count(r), metric.WithAttributes(attribute.String("result", r)))
			}
			return nil
		}
	}
	tb, s := e.telemetry, e.stats
	err := tb.RegisterAgentHeartbeatsCallback(byResult(agentreg.HeartbeatResults, s.Heartbeats))
	if err == nil {
		err = tb.RegisterAgentCertificateRenewalsCallback(byResult(agentreg.RenewalResults, s.Renewals))
	}
	if err == nil {
		err = tb.RegisterAgentRegistrationsCallback(byResult(agentreg.RegistrationResults, s.Registrations))
	}
	if err == nil {
		err = tb.RegisterAgentCertificateExpiryTimestampCallback(func(_ context.Context, o metric.Int64Observer) error {
			if at := s.CertificateExpiry(); at > 0 {
				o.Observe(at)
			}
			return nil
		})
	}
	if err != nil {
		tb.Shutdown()
		return fmt.Errorf("publish the registration's counts: %w", err)
	}
	return nil
}
