package hub

import (
	"fmt"
	"net/http"

	"github.com/fleetpulse/fleetpulse/hub/actions"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/policy"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/hub/work"
	"github.com/fleetpulse/fleetpulse/hub/workset"
)

// setupControllers adds the hub's control-plane controllers beside
// registration's, on its manager, and their gateway endpoints to the
// agents' mux. Each line is one controller package.
func (h *Hub) setupControllers(reg *registration.Service, agents *http.ServeMux) error {
	_ = agents
	if err := actions.Setup(reg.Manager(), h.alerts.Load(), h.logger.With("component", "alerttaint")); err != nil {
		return fmt.Errorf("alert taints: %w", err)
	}
	if err := work.Setup(reg.Manager(), reg.Identity, agents, h.logger.With("component", "work"), h.registry); err != nil {
		return fmt.Errorf("work distribution: %w", err)
	}
	if err := placement.Setup(reg.Manager(), reg.Query(), h.logger.With("component", "placement")); err != nil {
		return fmt.Errorf("placement: %w", err)
	}
	if err := workset.Setup(reg.Manager(), h.logger.With("component", "workset")); err != nil {
		return fmt.Errorf("manifest work sets: %w", err)
	}
	if err := policy.Setup(reg.Manager(), h.logger.With("component", "policy")); err != nil {
		return fmt.Errorf("policy propagation: %w", err)
	}
	if err := actions.SetupAlertRemediation(reg.Manager(), h.alerts.Load(), h.logger.With("component", "alertremediation")); err != nil {
		return fmt.Errorf("alert remediation: %w", err)
	}
	return nil
}
