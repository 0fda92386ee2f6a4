package hub

import (
	"net/http"

	"github.com/fleetpulse/fleetpulse/hub/registration"
)

// setupControllers adds the hub's control-plane controllers beside
// registration's, on its manager, and their gateway endpoints to the
// agents' mux. Each line is one controller package.
func (h *Hub) setupControllers(reg *registration.Service, agents *http.ServeMux) error {
	_ = agents
	return nil
}
