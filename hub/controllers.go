package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/grafana/dskit/services"
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

// controllersService runs the controller manager on the hub's control
// plane. It starts registration and the controllers, builds the agents'
// gateway on registration's authenticator with the controllers' endpoints,
// and runs once the manager's caches are synced, so the hub is not ready
// before it can tell registered clusters apart. It stops the manager and
// joins every controller before the rules and the store they use stop.
func (h *Hub) controllersService(p *parts) services.Service {
	var (
		stop    context.CancelFunc
		stopped = make(chan error, 1)
	)
	return services.NewBasicService(func(ctx context.Context) error {
		instant := query.InstantQueryFunc(p.engine, p.store.Queryable())
		cp, reg, err := h.controlPlane(ctx, instant, p.store)
		if err != nil {
			return err
		}
		p.cp, p.reg = cp, reg
		if h.cfg.ControlPlane.LeaderElect {
			reg.SetLeading(cp.Leading)
		}
		h.manager.Store(cp)
		p.agents = h.newAgents(p, reg)
		reg.Routes(p.agents)
		if err := h.setupControllers(cp.Manager(), instant, p.agents); err != nil {
			return err
		}
		// What the hub keeps per cluster goes with the cluster.
		for _, forget := range []func(string){p.evs.Forget, p.eventSeries.Forget, p.md.Forget, p.limiter.Forget, p.agents.Forget} {
			reg.OnDeregistered(forget)
		}
		var runCtx context.Context
		runCtx, stop = context.WithCancel(context.Background())
		go func() { stopped <- cp.Run(runCtx) }()
		if !cp.WaitReady(ctx) {
			stop()
			return errors.Join(errors.New("control-plane caches did not sync"), <-stopped)
		}
		return nil
	}, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case err := <-stopped:
			stopped <- err
			return fmt.Errorf("control-plane manager stopped: %w", err)
		}
	}, func(error) error {
		stop()
		if err := <-stopped; err != nil {
			h.logger.Error("control-plane controllers stopped with an error", "err", err)
		}
		return nil
	})
}

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
	cp, err := controlplane.New(restCfg, h.cfg.ControlPlane, h.cfg.Registration.Namespace, h.logger.With("component", "controlplane"), h.registry,
		registration.CacheByObject(h.cfg.Registration))
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
// gateway. Each Setup is one controller package.
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
