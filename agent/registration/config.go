package registration

import (
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// DefaultHeartbeatPeriod is the period until the hub names one.
const DefaultHeartbeatPeriod = 30 * time.Second

// EnvBootstrapToken is the environment variable that may carry the bootstrap
// token instead of the --bootstrap-token flag (which shows in ps).
const EnvBootstrapToken = "FLEETPULSE_BOOTSTRAP_TOKEN"

// Config is what an Agent needs. The fields come from fleetpulse-agent's
// flags, and Validate names problems by flag.
type Config struct {
	// Hub is the base URL of the hub's agents port (https).
	Hub string
	// ClusterName is the name the cluster registers under; it is the common
	// name of the agent's CSR.
	ClusterName string
	// StateDir holds the credentials, in StateDir/credentials.
	StateDir string
	// BootstrapToken authorizes joining. Empty means the agent runs on the
	// credentials it holds and cannot join again. It is never logged.
	BootstrapToken string
	// CAHash pins the hub's CA when joining (agentapi.CAHash format:
	// "sha256:<hex of the SHA-256 of the CA's SubjectPublicKeyInfo>").
	CAHash string
	// CAFile is a PEM bundle that verifies the hub when joining, instead of
	// (or as well as) CAHash.
	CAFile string
	// AgentVersion is reported to the hub.
	AgentVersion string
	// HeartbeatPeriod is the period until the hub names one; 0 means
	// DefaultHeartbeatPeriod.
	HeartbeatPeriod time.Duration
	// Cluster tells the cluster's identity and the health of its apiserver.
	Cluster Cluster
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Stats counts heartbeats, renewals and registrations; nil keeps counts
	// nobody reads.
	Stats *Stats
	// ReportHealth, when set, hears why the agent cannot reach the hub
	// while it runs (heartbeats or renewals failing, retried), and nil once
	// it can again. Errors that end the agent are Run's.
	ReportHealth func(error)
}

// Validate returns every problem, naming the flag it comes from. (Cluster
// is New's concern.)
func (c Config) Validate() error {
	var errs []error
	if c.Hub == "" {
		if c.BootstrapToken != "" {
			errs = append(errs, errors.New("--bootstrap-token needs --hub, the hub's agents URL"))
		} else {
			errs = append(errs, errors.New("--hub is required"))
		}
	} else if u, err := url.Parse(c.Hub); err != nil || u.Scheme != "https" || u.Host == "" {
		errs = append(errs, fmt.Errorf("--hub %q: registration needs an https:// URL", c.Hub))
	}
	if msgs := validation.IsDNS1123Label(c.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--cluster-name %q: %s", c.ClusterName, strings.Join(msgs, "; ")))
	}
	if c.StateDir == "" {
		errs = append(errs, errors.New("--state-dir is required: registration keeps the agent's credentials there"))
	}
	if c.CAHash != "" {
		if err := CheckCAHash(c.CAHash); err != nil {
			errs = append(errs, fmt.Errorf("--hub-ca-hash %q: %w", c.CAHash, err))
		}
	}
	if c.BootstrapToken != "" && c.CAHash == "" && c.CAFile == "" {
		errs = append(errs, errors.New("--bootstrap-token needs --hub-ca-hash (or --hub-ca-file) to verify the hub it sends the token to"))
	}
	if strings.ContainsAny(c.BootstrapToken, " \t\r\n") {
		errs = append(errs, errors.New("--bootstrap-token holds white space"))
	}
	if c.HeartbeatPeriod < 0 {
		errs = append(errs, fmt.Errorf("heartbeat period must not be negative, got %s", c.HeartbeatPeriod))
	}
	return errors.Join(errs...)
}

// CheckCAHash checks the agentapi.CAHash format: sha256 and 64 hex digits.
func CheckCAHash(h string) error {
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	if b, err := hex.DecodeString(hexPart); !ok || err != nil || len(b) != 32 {
		return errors.New("want sha256:<64 hex digits>, the SHA-256 of the hub CA's public key (SubjectPublicKeyInfo)")
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.HeartbeatPeriod == 0 {
		c.HeartbeatPeriod = DefaultHeartbeatPeriod
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Stats == nil {
		c.Stats = NewStats()
	}
	c.CAHash = strings.ToLower(c.CAHash)
	return c
}
