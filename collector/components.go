// Package collector assembles the Fleetpulse agent's OpenTelemetry Collector
// distribution: the component factories it ships (ours: k8s_inventory,
// k8s_events, cluster_identity, series_limit, fleetpulse_hub, and the
// controllers fleetpulse_registration, fleetpulse_work and
// fleetpulse_policy; the Collector's:
// OTLP, batch, memory_limiter, debug/OTLP exporters, zpages, file_storage,
// healthcheckv2),
// its build info, and the built-in default configuration.
package collector

import (
	"fmt"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/envprovider"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/exporter/debugexporter"
	"go.opentelemetry.io/collector/exporter/otlpexporter"
	"go.opentelemetry.io/collector/exporter/otlphttpexporter"
	"go.opentelemetry.io/collector/extension"
	"go.opentelemetry.io/collector/extension/zpagesextension"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/processor/batchprocessor"
	"go.opentelemetry.io/collector/processor/memorylimiterprocessor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"

	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/healthcheckv2extension"
	"github.com/open-telemetry/opentelemetry-collector-contrib/extension/storage/filestorage"

	hubexporter "github.com/fleetpulse/fleetpulse/exporters/hub"
	policyext "github.com/fleetpulse/fleetpulse/extensions/policy"
	registrationext "github.com/fleetpulse/fleetpulse/extensions/registration"
	workext "github.com/fleetpulse/fleetpulse/extensions/work"
	"github.com/fleetpulse/fleetpulse/processors/clusteridentity"
	"github.com/fleetpulse/fleetpulse/processors/serieslimit"
	"github.com/fleetpulse/fleetpulse/receiver/k8sevents"
	"github.com/fleetpulse/fleetpulse/receiver/k8sinventory"
)

// Components returns the factories of every component in the distribution.
func Components() (otelcol.Factories, error) { return components(nil) }

// components returns the factories; stop, when set, is how a controller
// extension that ends with an error stops the agent.
func components(stop func(error)) (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](
		otlpreceiver.NewFactory(),
		k8sinventory.NewFactory(),
		k8sevents.NewFactory(),
	); err != nil {
		return f, fmt.Errorf("receivers: %w", err)
	}
	if f.Processors, err = otelcol.MakeFactoryMap[processor.Factory](
		batchprocessor.NewFactory(),
		memorylimiterprocessor.NewFactory(),
		clusteridentity.NewFactory(),
		serieslimit.NewFactory(),
	); err != nil {
		return f, fmt.Errorf("processors: %w", err)
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](
		debugexporter.NewFactory(),
		otlpexporter.NewFactory(),
		otlphttpexporter.NewFactory(),
		hubexporter.NewFactory(),
	); err != nil {
		return f, fmt.Errorf("exporters: %w", err)
	}
	if f.Extensions, err = otelcol.MakeFactoryMap[extension.Factory](
		zpagesextension.NewFactory(),
		filestorage.NewFactory(),
		healthcheckv2extension.NewFactory(),
		registrationext.NewFactory(registrationext.WithStop(stop)),
		workext.NewFactory(workext.WithStop(stop)),
		policyext.NewFactory(policyext.WithStop(stop)),
	); err != nil {
		return f, fmt.Errorf("extensions: %w", err)
	}
	f.Telemetry = otelconftelemetry.NewFactory()
	return f, nil
}

// Settings returns the collector settings of the fleetpulse-agent command.
// Config URIs may use the env:, file: and yaml: schemes; a bare path is a file.
//
// stop is how the controller extensions stop the agent when one ends with
// an error (the hub deregistered the cluster): the Collector v0.142 does not
// act on an extension's fatal status. The command is expected to cancel the
// context it runs the Collector with; nil leaves the agent running.
func Settings(version string, stop func(error)) otelcol.CollectorSettings {
	return otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{
			Command:     "fleetpulse-agent",
			Description: "Fleetpulse agent: an OpenTelemetry Collector distribution that ships a cluster's telemetry to the Fleetpulse hub",
			Version:     version,
		},
		Factories: func() (otelcol.Factories, error) { return components(stop) },
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{
					envprovider.NewFactory(),
					fileprovider.NewFactory(),
					yamlprovider.NewFactory(),
				},
				DefaultScheme: "env",
			},
		},
	}
}
