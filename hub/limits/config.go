package limits

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// MaxDecompressedBytes is the most a request may decompress to: Prometheus's
// remote-write handler, which the hub hands what its own paths do not take,
// refuses more (client_golang's exp/api/remote maxDecodedSize), so a larger
// limit could never be reached.
const MaxDecompressedBytes = 32 << 20

// Limits are one cluster's ingest limits. 0 means no limit, but for
// DecompressedBytes, where it means MaxDecompressedBytes.
type Limits struct {
	// LabelNameLength bounds a label name, in bytes.
	LabelNameLength int `json:"label_name_length"`
	// LabelValueLength bounds a label value, in bytes.
	LabelValueLength int `json:"label_value_length"`
	// LabelsPerSeries bounds a series' labels as the writer sends them,
	// its metric name included.
	LabelsPerSeries int `json:"labels_per_series"`
	// SeriesPerRequest bounds the series of one request.
	SeriesPerRequest int `json:"series_per_request"`
	// SamplesPerRequest bounds the samples, exemplars and histogram samples
	// of one request, together.
	SamplesPerRequest int `json:"samples_per_request"`
	// DecompressedBytes bounds a request's body once decompressed, read
	// from the snappy header before anything is decompressed.
	DecompressedBytes int `json:"decompressed_bytes"`
	// HeadSeries bounds the cluster's series in its shard's head (its
	// active series, as prometheus_tsdb_head_series counts them): a request
	// that would create series past it is refused, while requests to
	// existing series go on.
	HeadSeries int `json:"head_series"`
	// RequestRate is the cluster's sustained requests per second, a token
	// bucket of RequestBurst tokens; 0 turns the bucket off.
	RequestRate  float64 `json:"request_rate"`
	RequestBurst int     `json:"request_burst"`
}

// DefaultLimits are the limits of clusters a limits file does not name, and
// of every cluster without a file. They are Mimir's per-series defaults and
// generous per-request ones: the agent (exporters/hub, receiver/k8sinventory)
// sends a whole inventory scrape as one request (its batch processor does
// not split one) and never comes near them; what they stop is a request
// shaped to make the hub allocate (the 1 MiB label value repeated over
// hundreds of series) or a cluster growing without bound.
func DefaultLimits() Limits {
	return Limits{
		// Mimir's defaults (max_label_name_length, max_label_value_length).
		// Kubernetes names are at most 253 bytes and UIDs 36: the agent's
		// longest values are image references, well under 2 KiB.
		LabelNameLength:  1 << 10,
		LabelValueLength: 2 << 10,
		// The agent's series carry about 10 labels (test/bench/ingest: 8 to
		// 11); OpenTelemetry's target_info carries every resource attribute,
		// a few dozen at most.
		LabelsPerSeries: 64,
		// A 3,000-node cluster's whole inventory is under 100k series; the
		// benchmarks send 983 (test/bench/ingest) and 1,000 (hub/ingest)
		// per request. The decompressed size bounds a request's memory
		// anyway: these bound its CPU.
		SeriesPerRequest:  100_000,
		SamplesPerRequest: 500_000,
		DecompressedBytes: MaxDecompressedBytes,
		// Five times a 3,000-node cluster's inventory (about 100k series),
		// about 1 GiB of head at the benchmarks' 2 KiB per series: the
		// most one cluster may take of a hub sized for a fleet.
		HeadSeries: 500_000,
		// The agent sends one request per batch (a collection interval of
		// 30 s, one request in flight); a Prometheus server remote-writing
		// a large cluster sends 2,000 samples per request over up to 50
		// shards, a few hundred requests per second (test/bench/ingest's
		// large-cluster shape: about 250). 1,000 per second in bursts of
		// 2,000 leaves those room and stops a client that floods; lower it
		// per cluster where the agent is all that writes.
		RequestRate:  1000,
		RequestBurst: 2000,
	}
}

// Overrides are the limits set for one cluster; a nil field keeps the
// default's value.
type Overrides struct {
	LabelNameLength   *int     `json:"label_name_length,omitempty"`
	LabelValueLength  *int     `json:"label_value_length,omitempty"`
	LabelsPerSeries   *int     `json:"labels_per_series,omitempty"`
	SeriesPerRequest  *int     `json:"series_per_request,omitempty"`
	SamplesPerRequest *int     `json:"samples_per_request,omitempty"`
	DecompressedBytes *int     `json:"decompressed_bytes,omitempty"`
	HeadSeries        *int     `json:"head_series,omitempty"`
	RequestRate       *float64 `json:"request_rate,omitempty"`
	RequestBurst      *int     `json:"request_burst,omitempty"`
}

// apply returns l with o's set fields in place.
func (o Overrides) apply(l Limits) Limits {
	set := func(dst *int, src *int) {
		if src != nil {
			*dst = *src
		}
	}
	set(&l.LabelNameLength, o.LabelNameLength)
	set(&l.LabelValueLength, o.LabelValueLength)
	set(&l.LabelsPerSeries, o.LabelsPerSeries)
	set(&l.SeriesPerRequest, o.SeriesPerRequest)
	set(&l.SamplesPerRequest, o.SamplesPerRequest)
	set(&l.DecompressedBytes, o.DecompressedBytes)
	set(&l.HeadSeries, o.HeadSeries)
	set(&l.RequestBurst, o.RequestBurst)
	if o.RequestRate != nil {
		l.RequestRate = *o.RequestRate
	}
	return l
}

// Config is the limits file (--ingest.limits-config-file), shaped as Thanos
// receive's: the limits of every cluster, and overrides by cluster name.
//
//	default:
//	  label_value_length: 4096
//	clusters:
//	  big-one:
//	    head_series: 2000000
//
// A field the file leaves out of default keeps DefaultLimits' value.
type Config struct {
	Default  Limits               `json:"default"`
	Clusters map[string]Overrides `json:"clusters,omitempty"`
}

// DefaultConfig is the configuration without a file: DefaultLimits for
// every cluster.
func DefaultConfig() Config { return Config{Default: DefaultLimits()} }

// For returns the cluster's limits.
func (c Config) For(cluster string) Limits {
	if o, ok := c.Clusters[cluster]; ok {
		return o.apply(c.Default)
	}
	return c.Default
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	errs := c.Default.validate("default")
	names := make([]string, 0, len(c.Clusters))
	for name := range c.Clusters {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		where := fmt.Sprintf("clusters[%q]", name)
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("%s: not a cluster name: %s", where, strings.Join(msgs, "; ")))
		}
		errs = append(errs, c.Clusters[name].apply(c.Default).validate(where)...)
	}
	return errors.Join(errs...)
}

func (l Limits) validate(where string) []error {
	var errs []error
	for _, f := range []struct {
		name string
		v    int
	}{
		{"label_name_length", l.LabelNameLength}, {"label_value_length", l.LabelValueLength},
		{"labels_per_series", l.LabelsPerSeries}, {"series_per_request", l.SeriesPerRequest},
		{"samples_per_request", l.SamplesPerRequest}, {"decompressed_bytes", l.DecompressedBytes},
		{"head_series", l.HeadSeries}, {"request_burst", l.RequestBurst},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %s must not be negative (0 is no limit), got %d", where, f.name, f.v))
		}
	}
	if l.DecompressedBytes > MaxDecompressedBytes {
		errs = append(errs, fmt.Errorf("%s: decompressed_bytes %d is over %d, the most the remote-write handler takes", where, l.DecompressedBytes, MaxDecompressedBytes))
	}
	if l.RequestRate < 0 {
		errs = append(errs, fmt.Errorf("%s: request_rate must not be negative (0 is no limit), got %g", where, l.RequestRate))
	}
	if l.RequestRate > 0 && l.RequestBurst < 1 {
		errs = append(errs, fmt.Errorf("%s: request_rate %g needs a request_burst of at least 1, got %d", where, l.RequestRate, l.RequestBurst))
	}
	return errs
}

// Parse reads a limits file's content: unknown fields are errors (a
// misspelt limit would silently not apply), and the result is validated.
func Parse(content []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := yaml.UnmarshalStrict(content, &cfg); err != nil {
		return Config{}, fmt.Errorf("parse limits: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid limits: %w", err)
	}
	return cfg, nil
}

// LoadFile reads and validates a limits file.
func LoadFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read limits file %q: %w", path, err)
	}
	cfg, err := Parse(b)
	if err != nil {
		return Config{}, fmt.Errorf("limits file %q: %w", path, err)
	}
	return cfg, nil
}
