package collector

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	agentreg "github.com/fleetpulse/fleetpulse/agent/registration"
)

// AgentOptions are what the built-in configuration needs to know; the rest
// has defaults. They come from fleetpulse-agent's flags.
type AgentOptions struct {
	// Hub is the hub's base URL, e.g. https://hub.example:8443.
	Hub string
	// ClusterName and ClusterSet are stamped on everything sent.
	ClusterName, ClusterSet string
	// Kubeconfig reaches the cluster's apiserver; empty means in-cluster.
	Kubeconfig string
	// StateDir holds the disk queue that survives outages and restarts.
	StateDir string
	// CAFile verifies the hub; CertFile and KeyFile are the agent's static
	// client certificate (all optional). With registration, CAFile verifies
	// the hub when joining, and the exporter uses the files the
	// registration keeps under StateDir/credentials and renews in place,
	// which it reloads (TLSReloadInterval).
	CAFile, CertFile, KeyFile string
	// BootstrapToken lets the agent join the hub. The rendered
	// configuration never holds it: it refers to $FLEETPULSE_BOOTSTRAP_TOKEN
	// (agent/registration.EnvBootstrapToken), which must hold the token.
	BootstrapToken string
	// CAHash pins the hub's CA when joining (--hub-ca-hash).
	CAHash string
	// CollectionInterval is how often the inventory is sent.
	CollectionInterval time.Duration
	// MetricsAddr serves the agent's own metrics for Prometheus (host:port).
	MetricsAddr string
	// HealthAddr serves the agent's health (healthcheckv2's /status, every
	// component's status with ?verbose); empty turns it off.
	HealthAddr string
	// SelfTelemetryAddr is the loopback OTLP/gRPC address through which the
	// agent's own metrics (queue size, sent, failed and dropped counts) join
	// the pipeline to the hub; empty keeps them local.
	SelfTelemetryAddr string
}

// Validate names every missing or malformed option by its flag.
func (o AgentOptions) Validate() error {
	var errs []error
	if o.Hub == "" {
		errs = append(errs, errors.New("--hub is required"))
	} else if u, err := url.Parse(o.Hub); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("--hub %q: want an https:// URL", o.Hub))
	}
	if msgs := validation.IsDNS1123Label(o.ClusterName); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("--cluster-name %q: %v", o.ClusterName, msgs))
	}
	if o.StateDir == "" {
		errs = append(errs, errors.New("--state-dir is required"))
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		errs = append(errs, errors.New("--cert-file and --key-file go together"))
	}
	errs = append(errs, o.validateRegistration()...)
	for flag, addr := range map[string]string{"--metrics-address": o.MetricsAddr, "--self-telemetry-address": o.SelfTelemetryAddr, "--health-address": o.HealthAddr} {
		if addr == "" && flag != "--metrics-address" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: %w", flag, addr, err))
		}
	}
	if o.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("--collection-interval must be positive, got %s", o.CollectionInterval))
	}
	return errors.Join(errs...)
}

// validateRegistration checks what joining the hub needs, naming the
// flags.
func (o AgentOptions) validateRegistration() []error {
	if o.BootstrapToken == "" {
		return nil
	}
	var errs []error
	if o.CertFile != "" || o.KeyFile != "" {
		errs = append(errs, errors.New("--bootstrap-token and --cert-file/--key-file exclude each other: registration issues the agent's certificate"))
	}
	if u, err := url.Parse(o.Hub); o.Hub != "" && (err != nil || u.Scheme != "https") {
		errs = append(errs, fmt.Errorf("--hub %q: registration needs an https:// URL", o.Hub))
	}
	if o.CAHash == "" && o.CAFile == "" {
		errs = append(errs, errors.New("--bootstrap-token needs --hub-ca-hash (or --hub-ca-file) to verify the hub it sends the token to"))
	}
	if strings.ContainsAny(o.BootstrapToken, " \t\r\n") {
		errs = append(errs, errors.New("--bootstrap-token holds white space"))
	}
	if o.CAHash != "" {
		if err := agentreg.CheckCAHash(o.CAHash); err != nil {
			errs = append(errs, fmt.Errorf("--hub-ca-hash %q: %w", o.CAHash, err))
		}
	}
	return errs
}

// Registers reports whether the built-in pipeline runs the registration and
// the agent's controllers (work applier, policy controller): with a bootstrap token, or with the credentials a former
// run stored in StateDir when no client certificate is given.
func (o AgentOptions) Registers() bool {
	return o.BootstrapToken != "" || (o.CertFile == "" && o.KeyFile == "" && agentreg.HasCredentials(o.StateDir))
}

// TLSReloadInterval is how often the exporter re-reads its client
// certificate and key files.
const TLSReloadInterval = time.Minute

// DefaultConfig renders the agent's built-in pipelines as Collector YAML: the
// cluster's inventory metrics and its events as logs, memory-limited, stamped
// with the cluster's identity, batched, and sent to the hub through a disk
// queue; the events receiver keeps its place in the same storage. When the
// agent registers (Registers), the fleetpulse_registration,
// fleetpulse_work and fleetpulse_policy extensions run too, and the exporter uses the credentials
// the registration keeps.
func DefaultConfig(o AgentOptions) (string, error) {
	if err := o.Validate(); err != nil {
		return "", err
	}
	registers := o.Registers()
	joinCA := o.CAFile
	if registers {
		p := agentreg.PathsIn(o.StateDir)
		o.CAFile, o.CertFile, o.KeyFile = p.CA, p.Cert, p.Key
	}
	api := map[string]any{"auth_type": "serviceAccount"}
	if o.Kubeconfig != "" {
		api = map[string]any{"auth_type": "kubeConfig", "kubeconfig": o.Kubeconfig}
	}
	inventory := map[string]any{"collection_interval": o.CollectionInterval.String()}
	events := map[string]any{"storage": "file_storage"}
	for k, v := range api {
		inventory[k], events[k] = v, v
	}
	identity := map[string]any{"cluster_name": o.ClusterName}
	if o.ClusterSet != "" {
		identity["cluster_set"] = o.ClusterSet
	}
	tls := map[string]any{}
	for k, v := range map[string]string{"ca_file": o.CAFile, "cert_file": o.CertFile, "key_file": o.KeyFile} {
		if v != "" {
			tls[k] = v
		}
	}
	if o.CertFile != "" {
		// The client certificate is read again at the first handshake after
		// this interval, so a renewed certificate is picked up without a
		// restart (connections open keep the one they were made with).
		tls["reload_interval"] = TLSReloadInterval.String()
	}
	extensions := map[string]any{
		"file_storage": map[string]any{
			"directory":        filepath.Join(o.StateDir, "queue"),
			"create_directory": true,
		},
	}
	extensionIDs := []string{"file_storage"}
	if o.HealthAddr != "" {
		// Component statuses show in the body (?verbose); the status code
		// turns only on a fatal error or a stop, so that a hub outage, which
		// the agent rides out on its queue, never fails a probe.
		extensions["healthcheckv2"] = map[string]any{"use_v2": true, "http": map[string]any{"endpoint": o.HealthAddr}}
		extensionIDs = append(extensionIDs, "healthcheckv2")
	}
	if registers {
		registration, work := controllers(o, joinCA)
		extensions["fleetpulse_registration"], extensions["fleetpulse_work"] = registration, work
		// The policy controller reaches the hub and the cluster as the work
		// applier does.
		extensions["fleetpulse_policy"] = maps.Clone(work)
		extensionIDs = append(extensionIDs, "fleetpulse_registration", "fleetpulse_work", "fleetpulse_policy")
	}
	cfg := map[string]any{
		"extensions": extensions,
		"receivers":  map[string]any{"k8s_inventory": inventory, "k8s_events": events},
		"processors": map[string]any{
			"memory_limiter":   map[string]any{"check_interval": "1s", "limit_mib": 128, "spike_limit_mib": 32},
			"cluster_identity": identity,
			"series_limit":     map[string]any{"max_series_per_metric": 10000},
			"batch":            map[string]any{},
		},
		"exporters": map[string]any{
			"fleetpulse_hub": map[string]any{
				"endpoint":      o.Hub,
				"tls":           tls,
				"sending_queue": map[string]any{"storage": "file_storage"},
				// The hub takes remote write 2.0: fewer bytes, metadata, and
				// a count of samples written that the exporter checks.
				"protocol": "rw2",
			},
		},
		"service": map[string]any{
			"extensions": extensionIDs,
			"pipelines": map[string]any{
				"metrics": map[string]any{
					"receivers":  []string{"k8s_inventory"},
					"processors": []string{"memory_limiter", "series_limit", "cluster_identity", "batch"},
					"exporters":  []string{"fleetpulse_hub"},
				},
				"logs": map[string]any{
					"receivers":  []string{"k8s_events"},
					"processors": []string{"memory_limiter", "cluster_identity", "batch"},
					"exporters":  []string{"fleetpulse_hub"},
				},
			},
		},
	}
	if err := addSelfTelemetry(cfg, o); err != nil {
		return "", err
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("render default config: %w", err)
	}
	return string(b), nil
}

// controllers returns the settings of the registration and the work applier.
func controllers(o AgentOptions, joinCA string) (registration, work map[string]any) {
	registration = map[string]any{
		"endpoint": o.Hub, "cluster_name": o.ClusterName, "state_dir": o.StateDir, "kubeconfig": o.Kubeconfig,
	}
	if o.BootstrapToken != "" {
		registration["bootstrap_token"] = "${env:" + agentreg.EnvBootstrapToken + "}"
	}
	if o.CAHash != "" {
		registration["hub_ca_hash"] = o.CAHash
	}
	if joinCA != "" {
		registration["hub_ca_file"] = joinCA
	}
	work = map[string]any{
		"endpoint": o.Hub, "cluster_name": o.ClusterName, "state_dir": o.StateDir, "kubeconfig": o.Kubeconfig,
	}
	return registration, work
}

// addSelfTelemetry serves the agent's own metrics for local scraping and, when
// SelfTelemetryAddr is set, pushes them over loopback OTLP/gRPC into a pipeline of
// their own to the hub, so a fleet's agents are observable in one place.
func addSelfTelemetry(cfg map[string]any, o AgentOptions) error {
	host, portStr, err := net.SplitHostPort(o.MetricsAddr)
	if err != nil {
		return fmt.Errorf("--metrics-address %q: %w", o.MetricsAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--metrics-address %q: %w", o.MetricsAddr, err)
	}
	readers := []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{"prometheus": map[string]any{"host": host, "port": port}}}}}
	service := cfg["service"].(map[string]any)
	if o.SelfTelemetryAddr != "" {
		readers = append(readers, map[string]any{"periodic": map[string]any{
			"interval": o.CollectionInterval.Milliseconds(),
			// gRPC, not HTTP: the OTLP/HTTP metric exporter (v1.43+) refuses the
			// plain-HTTP loopback endpoint together with the TLS settings the
			// Collector's telemetry config always passes it.
			"exporter": map[string]any{"otlp": map[string]any{
				"protocol": "grpc",
				"endpoint": "http://" + o.SelfTelemetryAddr,
			}},
		}})
		cfg["receivers"].(map[string]any)["otlp/self"] = map[string]any{
			"protocols": map[string]any{"grpc": map[string]any{"endpoint": o.SelfTelemetryAddr}},
		}
		service["pipelines"].(map[string]any)["metrics/self"] = map[string]any{
			"receivers":  []string{"otlp/self"},
			"processors": []string{"memory_limiter", "cluster_identity", "batch"},
			"exporters":  []string{"fleetpulse_hub"},
		}
	}
	service["telemetry"] = map[string]any{"metrics": map[string]any{"level": "normal", "readers": readers}}
	return nil
}
