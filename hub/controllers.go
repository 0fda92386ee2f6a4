package hub

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fleetpulse/fleetpulse/hub/actions"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/policy"
	"github.com/fleetpulse/fleetpulse/hub/query"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/work"
	"github.com/fleetpulse/fleetpulse/hub/workset"
)

// controlPlane installs the API on the hub's control plane and builds its
// manager with registration on it, whose authenticator the agents' gateway
// needs before the other controllers add their endpoints to it.
func (h *Hub) controlPlane(ctx context.Context, instant query.QueryFunc, store *metricstore.Store) (
	*controlplane.ControlPlane, *registration.Service, error) {
	restCfg, err := controlplane.RESTConfig(h.cfg.ControlPlaneKubeconfig)
	if err != nil {
		return nil, nil, err
	}
	ca, err := registration.LoadCA(h.cfg.AgentTLS.ClientCAFile, h.cfg.AgentTLS.ClientCAKeyFile)
	if err != nil {
		return nil, nil, err
	}
	// The API goes in first: the manager's caches need its types served.
	if err := controlplane.InstallAt(ctx, restCfg, h.cfg.Registration.Namespace); err != nil {
		return nil, nil, fmt.Errorf("install the API on the control plane: %w", err)
	}
	cp, err := controlplane.New(restCfg, h.cfg.ControlPlane, h.logger.With("component", "controlplane"), registration.CacheByObject(h.cfg.Registration))
	if err != nil {
		return nil, nil, err
	}
	reg, err := registration.Setup(cp.Manager(), h.cfg.Registration, ca, instant, store, h.logger.With("component", "registration"), h.registry)
	if err != nil {
		return nil, nil, fmt.Errorf("registration: %w", err)
	}
	return cp, reg, nil
}

// setupControllers adds the hub's other controller sets to the control
// plane's manager, beside registration, and their endpoints to the agents'
// gateway; the caller runs the manager and waits for its caches, so the
// hub is not ready before it can tell registered clusters apart. Each
// Setup is one controller package.
func (h *Hub) setupControllers(mgr manager.Manager, instant query.QueryFunc, agents *gateway.Gateway) error {
	if err := actions.Setup(mgr, h.alerts.Load(), h.logger.With("component", "alerttaint")); err != nil {
		return fmt.Errorf("alert taints: %w", err)
	}
	if err := work.Setup(mgr, agents, h.logger.With("component", "work"), h.registry); err != nil {
		return fmt.Errorf("work distribution: %w", err)
	}
	if err := placement.Setup(mgr, instant, h.logger.With("component", "placement")); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	if err := workset.Setup(mgr, instant, h.registry, h.logger.With("component", "workset")); err != nil {
		return fmt.Errorf("manifest work sets: %w", err)
	}
	if err := policy.Setup(mgr, h.logger.With("component", "policy")); err != nil {
		return fmt.Errorf("policy propagation: %w", err)
	}
	if err := policy.SetupGateway(mgr, agents, h.logger.With("component", "policy"), h.registry); err != nil {
		return fmt.Errorf("policy distribution: %w", err)
	}
	if err := actions.SetupAlertRemediation(mgr, h.alerts.Load(), h.logger.With("component", "alertremediation")); err != nil {
		return fmt.Errorf("alert remediation: %w", err)
	}
	return nil
}
