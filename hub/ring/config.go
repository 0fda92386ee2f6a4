package ring

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/grafana/dskit/kv/memberlist"
)

// Config configures the ring. DefaultConfig gives the defaults; the ring
// is off unless Enabled.
type Config struct {
	// Enabled joins the ring; off, the hub owns every cluster.
	Enabled bool
	// Memberlist is dskit's memberlist KV: bind address and port, the
	// members to join, gossip timings.
	Memberlist memberlist.KVConfig
	// ReplicationFactor is how many replicas own each cluster.
	ReplicationFactor int
	// HeartbeatPeriod is how often this replica heartbeats into the ring;
	// HeartbeatTimeout is how long a silent replica still owns its clusters.
	// A replica silent that long is forgotten by the others.
	HeartbeatPeriod, HeartbeatTimeout time.Duration
	// InstanceID names this replica in the ring (default: the host name).
	InstanceID string
	// InstanceAddr is the host (name or IP) peers and redirected agents
	// reach this replica at: a name of the agents' serving certificate.
	// Empty: the host of the listen address, or the first private
	// network interface's address when it listens on every interface.
	InstanceAddr string
	// NumTokens is how many tokens this replica takes in the ring.
	NumTokens int
}

// DefaultConfig returns the ring off, with dskit's memberlist defaults
// and heartbeats that let a dead replica's clusters move in about half a
// minute.
func DefaultConfig() Config {
	var c Config
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	c.RegisterFlags(fs)
	return c
}

// RegisterFlags registers the ring's flags under the names dskit gives
// them: memberlist's own (--memberlist.bind-addr, --memberlist.bind-port,
// --memberlist.join, ...) through its RegisterFlags, and the ring's as
// Mimir names its rings'.
func (c *Config) RegisterFlags(f *flag.FlagSet) {
	c.Memberlist.RegisterFlags(f)
	host, _ := os.Hostname()
	f.BoolVar(&c.Enabled, "ring.enabled", false, "join the hub replicas' ring over memberlist: each cluster is owned by --ring.replication-factor replicas, and agents that reach another replica are redirected to an owner. Off, this hub owns every cluster")
	f.IntVar(&c.ReplicationFactor, "ring.replication-factor", 1, "hub replicas that own each cluster")
	f.DurationVar(&c.HeartbeatPeriod, "ring.heartbeat-period", 5*time.Second, "how often this replica heartbeats into the ring")
	f.DurationVar(&c.HeartbeatTimeout, "ring.heartbeat-timeout", 15*time.Second, "how long a replica that stopped heartbeating (killed, not stopped) keeps its clusters before the others forget it")
	f.StringVar(&c.InstanceID, "ring.instance-id", host, "this replica's name in the ring")
	f.StringVar(&c.InstanceAddr, "ring.instance-addr", "", "host (name or IP, one of the agents' serving certificate) other replicas and redirected agents reach this replica at; empty: the listen address's host, or the first private interface's address")
	f.IntVar(&c.NumTokens, "ring.num-tokens", 128, "tokens this replica takes in the ring")
}

// Validate returns every problem with an enabled ring's configuration.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	if c.ReplicationFactor < 1 {
		errs = append(errs, fmt.Errorf("ring replication factor must be at least 1, got %d", c.ReplicationFactor))
	}
	if c.HeartbeatPeriod <= 0 {
		errs = append(errs, fmt.Errorf("ring heartbeat period must be positive, got %s", c.HeartbeatPeriod))
	}
	if c.HeartbeatTimeout <= c.HeartbeatPeriod {
		errs = append(errs, fmt.Errorf("ring heartbeat timeout (%s) must be longer than its period (%s)", c.HeartbeatTimeout, c.HeartbeatPeriod))
	}
	if c.InstanceID == "" {
		errs = append(errs, errors.New("the ring needs an instance id (--ring.instance-id)"))
	}
	if c.NumTokens < 1 {
		errs = append(errs, fmt.Errorf("ring tokens must be at least 1, got %d", c.NumTokens))
	}
	if err := c.Memberlist.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("memberlist: %w", err))
	}
	return errors.Join(errs...)
}
