package hub

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr []string
	}{
		{"defaults", func(*Config) {}, nil},
		{"bad address", func(c *Config) { c.HTTPListenAddress = "9090" }, []string{`http listen address "9090"`}},
		{"every problem", func(c *Config) { c.HTTPListenAddress = "x"; c.ShutdownTimeout = 0 }, []string{"http listen address", "shutdown timeout"}},
		{"agents without TLS", func(c *Config) { c.AgentTLS = TLSConfig{} }, []string{"every agent call is authenticated"}},
		{"store", func(c *Config) { c.Store.Dir = "" }, []string{"tsdb path is required"}},
		{"negative connection limit", func(c *Config) { c.AgentMaxConnections = -1 }, []string{"agent max connections must not be negative"}},
		{"shards", func(c *Config) { c.Store.Shards = 0 }, []string{"shards 0: want 1 to 1024"}},
		{"peers", func(c *Config) {
			c.GRPCListenAddress, c.Store.Replica = ":10901", "hub-0"
			c.QueryPeers = []string{"hub-0:10901", "hub-1"}
		},
			[]string{`query peer "hub-1"`}},
		{"peers without a StoreAPI or a replica name", func(c *Config) { c.QueryPeers = []string{"hub-1:10901"} },
			[]string{"set the grpc listen address", "replica name (--replica.name)"}},
		{"replica label", func(c *Config) { c.Store.ReplicaLabel = "fleetpulse_shard" }, []string{`replica label "fleetpulse_shard"`}},
		{"peer TLS", func(c *Config) { c.PeerTLS.CertFile = "c" }, []string{"the peers' TLS needs a CA"}},
		{"replication factor 2 without replication", func(c *Config) {
			c.Ring.Enabled, c.Ring.ReplicationFactor, c.Ring.InstanceID = true, 2, "hub-0"
			c.GRPCListenAddress, c.Store.Replica = ":10901", "hub-0"
		}, []string{"at ring replication factor 2 every owner of a cluster writes its agents' samples"}},
		{"replication certificate without its key", func(c *Config) { c.Replication.CertFile = "c" },
			[]string{"replication needs both a client certificate and its key"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.AgentTLS = TLSConfig{CertFile: "c", KeyFile: "k", ClientCAFile: "ca"}
			tc.mutate(&cfg)
			err := cfg.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors naming %v", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to name %q", err, w)
				}
			}
		})
	}
}

// TestRunServesAndShutsDown starts a hub on a free port and checks the
// operational endpoints, then that cancelling the context stops it cleanly.
func TestRunServesAndShutsDown(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HTTPListenAddress = "127.0.0.1:0"
	cfg.AgentListenAddress = ""
	cfg.Store.Dir = t.TempDir()
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()

	testutil.Eventually(t, 10*time.Second, func() error {
		if h.Addr() == nil {
			return errors.New("hub not listening")
		}
		return nil
	})
	base := "http://" + h.Addr().String()
	for path, want := range map[string]string{
		"/-/healthy":                     "Healthy",
		"/-/ready":                       "Ready",
		"/metrics":                       "fleetpulse_hub_build_info",
		"/api/v1/status/buildinfo":       `"status":"success"`,
		"/api/v1/query?query=vector(42)": `"42"`,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s = %s %q, want 200 containing %q", path, resp.Status, body, want)
		}
	}
	if resp, err := http.Post(base+"/-/ready", "text/plain", nil); err == nil {
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("POST /-/ready = %s, want 405", resp.Status)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(cfg.ShutdownTimeout):
		t.Fatal("Run did not return after cancel")
	}
	if _, err := http.Get(base + "/-/healthy"); err == nil {
		t.Error("hub still serving after shutdown")
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted an empty configuration")
	}
}
