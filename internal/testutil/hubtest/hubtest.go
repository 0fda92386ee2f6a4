// Package hubtest runs a real hub (hub.Hub) in a test: listeners on free
// loopback ports, its store in a test temp dir, agents authenticated by a
// test CA, and a Prometheus API client on its query API.
//
// The hub package's own tests cannot import it (hubtest imports hub); they
// run their hub with testutil.Run.
package hubtest

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/fleetpulse/fleetpulse/hub"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// Hub is a hub running until the test ends or Stop.
type Hub struct {
	*hub.Hub
	// Config is the hub's configuration with the addresses it bound, so
	// that Start(t, h.Config) after Stop brings back the same hub, as a
	// restarted process would.
	Config hub.Config
	// HTTPURL serves the query API, /metrics and the health checks.
	HTTPURL string
	// AgentsURL is the agent listener (mutual TLS); empty without one.
	AgentsURL string
	// API is a Prometheus API client on HTTPURL.
	API promv1.API
	// Stop shuts the hub down gracefully and fails the test if Run
	// returned an error. Stopping a stopped hub does nothing.
	Stop func()
}

// Config returns the default configuration on loopback ports the system
// picks, with the store in a test temp dir, changed by configure in order.
// When ca is not nil the agent listener serves a certificate from ca and
// accepts agents' client certificates from ca; otherwise there is none.
func Config(t testing.TB, ca *testbed.CA, configure ...func(*hub.Config)) hub.Config {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", ""
	if ca != nil {
		cfg.AgentListenAddress = "127.0.0.1:0"
		cfg.AgentTLS.CertFile, cfg.AgentTLS.KeyFile = ca.Server("hub")
		cfg.AgentTLS.ClientCAFile = ca.CertFile
	}
	cfg.Store.Dir = t.TempDir()
	for _, c := range configure {
		c(&cfg)
	}
	return cfg
}

// Start runs a hub with cfg, its logs discarded, and returns once it
// answers ready.
func Start(t testing.TB, cfg hub.Config) *Hub {
	t.Helper()
	return StartLogged(t, cfg, nil)
}

// StartLogged is Start with the hub's logs going to logger.
func StartLogged(t testing.TB, cfg hub.Config, logger *slog.Logger) *Hub {
	t.Helper()
	hb, err := hub.New(cfg, logger)
	if err != nil {
		t.Fatalf("new hub: %v", err)
	}
	h := &Hub{Hub: hb, Config: cfg}
	h.Stop = testutil.Run(t, hb.Run, func() bool {
		return hb.Ready() && hb.Addr() != nil && (cfg.AgentListenAddress == "" || hb.AgentAddr() != nil)
	})
	h.Config.HTTPListenAddress = hb.Addr().String()
	h.HTTPURL = "http://" + h.Config.HTTPListenAddress
	if cfg.AgentListenAddress != "" {
		h.Config.AgentListenAddress = hb.AgentAddr().String()
		h.AgentsURL = "https://" + h.Config.AgentListenAddress
	}
	c, err := api.NewClient(api.Config{Address: h.HTTPURL})
	if err != nil {
		t.Fatalf("prometheus API client: %v", err)
	}
	h.API = promv1.NewAPI(c)
	return h
}
