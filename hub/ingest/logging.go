package ingest

import (
	"context"
	"log/slog"
)

// clientErrors are the messages Prometheus's remote-write handler logs, at
// Error or Warn, for what a client sent wrong: one line per request, or per
// series or sample, that any client can flood the log with. The hub logs
// them at Debug; its requests_total counter counts the refusals by code and
// limited_total those for limits. "Error while storing the remote write
// request" (a 5xx: the hub's own failure) stays at Error.
var clientErrors = map[string]bool{
	"Error decoding remote write request":                                        true,
	"Unaccepted message type":                                                    true,
	"Error reading remote write request body":                                    true,
	"Error decoding v1 remote write request":                                     true,
	"Error decoding v2 remote write request":                                     true,
	"Out of order sample from remote write":                                      true,
	"Out of order histogram from remote write":                                   true,
	"Invalid histogram received":                                                 true,
	"Out of order exemplar":                                                      true,
	"Error on ingesting out-of-order exemplars":                                  true,
	"Invalid metric names or labels":                                             true,
	"Invalid labels for series.":                                                 true,
	"failed to ingest exemplar, emitting error log, but no error for PRW caller": true,
}

// clientErrorsAtDebug logs clientErrors at Debug.
type clientErrorsAtDebug struct{ slog.Handler }

func (h clientErrorsAtDebug) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && clientErrors[r.Message] {
		if !h.Handler.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h clientErrorsAtDebug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return clientErrorsAtDebug{h.Handler.WithAttrs(attrs)}
}

func (h clientErrorsAtDebug) WithGroup(name string) slog.Handler {
	return clientErrorsAtDebug{h.Handler.WithGroup(name)}
}
