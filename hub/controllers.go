package hub

import (
	"fmt"
	"net/http"

	"github.com/fleetpulse/fleetpulse/hub/actions"
	"github.com/fleetpulse/fleetpulse/hub/registration"
)

// setupControllers adds the hub's control-plane controllers beside
// registration's, on its manager, and their gateway endpoints to the
// agents' mux. Each line is one controller package.
func (h *Hub) setupControllers(reg *registration.Service, agents *http.ServeMux) error {
	_ = agents
	if err := actions.Setup(reg.Manager(), h.alerts, h.logger.With("component", "alerttaint")); err != nil {
		return fmt.Errorf("alert taints: %w", err)
	}
	return nil
}
