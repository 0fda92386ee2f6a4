package events

import "fmt"

// Limits on what one agent request and the store can hold. Field maxima
// follow Kubernetes' own where it has them (object names are DNS subdomains
// of at most 253 bytes, namespaces DNS labels of 63, events.k8s.io reasons
// 128); a message has none in core/v1, so the hub keeps 4 KiB, enough for
// every message Kubernetes' components write.
const (
	MaxMessageBytes   = 4 << 10
	MaxNameBytes      = 253
	MaxNamespaceBytes = 63
	maxShortBytes     = 128 // reason, type, kind

	// DefaultMaxEventsPerRequest is above the 8192 log records the agent's
	// batch processor sends at most.
	DefaultMaxEventsPerRequest = 10_000
	// DefaultMaxBytes bounds the events kept: 100,000 events of a few
	// hundred bytes fit, and so do 25,000 with full-length messages.
	DefaultMaxBytes = 128 << 20
	// MaxQueryLimit caps the events one query returns (about 5 MiB of JSON
	// at most).
	MaxQueryLimit = 1000
)

// Option sets an optional setting of NewStore.
type Option func(*options)

type options struct {
	extraReasons, extraKinds []string
	maxEventsPerRequest      int
	maxBytes                 int64
}

func defaultOptions() options {
	return options{maxEventsPerRequest: DefaultMaxEventsPerRequest, maxBytes: DefaultMaxBytes}
}

// WithExtraReasons adds event reasons that count under their own name in
// metric labels and series, beyond the Kubernetes ones this package knows
// (the operator's choice: each one can add a series per cluster, type and
// kind).
func WithExtraReasons(reasons ...string) Option {
	return func(o *options) { o.extraReasons = append(o.extraReasons, reasons...) }
}

// WithExtraKinds adds involved-object kinds (custom resources, say) that
// count under their own name.
func WithExtraKinds(kinds ...string) Option {
	return func(o *options) { o.extraKinds = append(o.extraKinds, kinds...) }
}

// WithMaxEventsPerRequest sets how many log records one ingest request may
// carry; a request with more is refused with 413.
func WithMaxEventsPerRequest(n int) Option {
	return func(o *options) { o.maxEventsPerRequest = n }
}

// WithMaxBytes sets the memory the kept events may take; the oldest go first.
func WithMaxBytes(n int64) Option {
	return func(o *options) { o.maxBytes = n }
}

// ValidateOptions returns a problem with the settings, for a hub's
// configuration check.
func ValidateOptions(opts ...Option) error {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o.validate()
}

func (o options) validate() error {
	if o.maxEventsPerRequest < 1 {
		return fmt.Errorf("events per request must be at least 1, got %d", o.maxEventsPerRequest)
	}
	if o.maxBytes < 1<<20 {
		return fmt.Errorf("event store bytes must be at least 1 MiB, got %d", o.maxBytes)
	}
	for _, r := range append(append([]string(nil), o.extraReasons...), o.extraKinds...) {
		if r == "" || len(r) > maxShortBytes {
			return fmt.Errorf("extra event reason or kind %q: want 1 to %d bytes", r, maxShortBytes)
		}
	}
	return nil
}
