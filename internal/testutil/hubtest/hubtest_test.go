package hubtest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// TestStartServesAndRestarts checks that a started hub answers on both
// listeners and that Start with its Config brings it back on the same
// addresses.
func TestStartServesAndRestarts(t *testing.T) {
	ca := testbed.NewCA(t, "agents")
	h := Start(t, Config(t, ca))
	if _, err := h.API.Buildinfo(context.Background()); err != nil {
		t.Fatalf("query API: %v", err)
	}
	agent := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLS("c1")}, Timeout: 10 * time.Second}
	resp, err := agent.Get(h.AgentsURL + "/")
	if err != nil {
		t.Fatalf("agent listener with a client certificate of the CA: %v", err)
	}
	resp.Body.Close()
	h.Stop()
	again := Start(t, h.Config)
	if again.HTTPURL != h.HTTPURL || again.AgentsURL != h.AgentsURL {
		t.Errorf("restarted on %s and %s, want %s and %s", again.HTTPURL, again.AgentsURL, h.HTTPURL, h.AgentsURL)
	}
}
