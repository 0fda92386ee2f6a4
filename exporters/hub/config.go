package hub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/collector/config/confighttp"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/config/configretry"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

// The values of Config.Protocol.
const (
	// ProtocolRW1 sends Prometheus Remote-Write 1.0 (prometheus.WriteRequest).
	ProtocolRW1 = "rw1"
	// ProtocolRW2 sends Prometheus Remote-Write 2.0 (io.prometheus.write.v2.Request).
	ProtocolRW2 = "rw2"
)

// Config is the exporter's configuration.
type Config struct {
	// ClientConfig holds the hub's base URL (endpoint), TLS (CA, client
	// certificate and key), timeout and headers.
	confighttp.ClientConfig `mapstructure:",squash"`
	// MetricsPath is the hub's remote-write path.
	MetricsPath string `mapstructure:"metrics_path"`
	// Protocol is the remote-write message metrics are sent as: "rw1"
	// (Remote-Write 1.0, prometheus.WriteRequest, which every
	// remote-write receiver accepts) or "rw2" (Remote-Write 2.0,
	// io.prometheus.write.v2.Request: a symbol table instead of repeated
	// label strings, each series' type, unit and help, and the receiver's
	// count of samples written). With "rw2", a receiver that answers 415 or
	// acknowledges without the 2.0 written-count headers (a 1.0 receiver)
	// gets the request again as 1.0, and 1.0 from then on.
	Protocol string `mapstructure:"protocol"`
	// LogsPath is the hub's OTLP/HTTP logs path.
	LogsPath string `mapstructure:"logs_path"`
	// QueueConfig is the sending queue; name a storage extension
	// (storage: file_storage) to keep it on disk across restarts and outages.
	QueueConfig configoptional.Optional[exporterhelper.QueueBatchConfig] `mapstructure:"sending_queue"`
	// BackOffConfig is the retry policy. max_elapsed_time 0, the default,
	// retries until the hub answers: data is dropped only when the queue is full.
	BackOffConfig configretry.BackOffConfig `mapstructure:"retry_on_failure"`

	_ struct{}
}

func createDefaultConfig() *Config {
	client := confighttp.NewDefaultClientConfig()
	client.Timeout = 30 * time.Second
	queue := exporterhelper.NewDefaultQueueConfig()
	queue.QueueSize = 5000
	// One request in flight keeps each series' samples in order at the hub
	// across outages; parallel senders would reorder retried batches.
	queue.NumConsumers = 1
	retry := configretry.NewDefaultBackOffConfig()
	retry.MaxElapsedTime = 0
	return &Config{
		ClientConfig: client,
		MetricsPath:  "/api/v1/write",
		// 1.0 reaches every receiver, Prometheus 2.x included; the agent's
		// built-in pipeline to the hub chooses 2.0.
		Protocol:      ProtocolRW1,
		LogsPath:      "/v1/logs",
		QueueConfig:   configoptional.Some(queue),
		BackOffConfig: retry,
	}
}

// Validate returns every problem with the configuration.
func (c *Config) Validate() error {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New(`"endpoint" is required: the hub's base URL, e.g. https://hub.example:8443`))
	} else if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf(`"endpoint" %q: want an http:// or https:// URL with a host`, c.Endpoint))
	}
	for name, p := range map[string]string{"metrics_path": c.MetricsPath, "logs_path": c.LogsPath} {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("%q %q: must start with /", name, p))
		}
	}
	if c.Protocol != ProtocolRW1 && c.Protocol != ProtocolRW2 {
		errs = append(errs, fmt.Errorf(`"protocol" %q: want %q (remote write 1.0) or %q (remote write 2.0)`, c.Protocol, ProtocolRW1, ProtocolRW2))
	}
	if c.Timeout <= 0 {
		errs = append(errs, fmt.Errorf(`"timeout" must be positive, got %s`, c.Timeout))
	}
	return errors.Join(errs...)
}

func (c *Config) url(path string) string {
	return strings.TrimSuffix(c.Endpoint, "/") + path
}
