package gateway

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/oklog/ulid/v2"
)

// HeaderRequestID names a request in the caller's and the hub's logs.
const HeaderRequestID = "X-Request-Id"

// maxRequestIDBytes bounds a caller's request ID: longer ones, or ones with
// other characters than [A-Za-z0-9._:-], are replaced, so that what the
// caller sends cannot forge log lines nor bloat them.
const maxRequestIDBytes = 128

type requestIDKey struct{}

// RequestID is the request's ID, or "" outside the gateway.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// withRequestID gives r the caller's request ID, or a new one (a ULID), and
// echoes it in the answer.
func withRequestID(w http.ResponseWriter, r *http.Request) *http.Request {
	id := r.Header.Get(HeaderRequestID)
	if !validRequestID(id) {
		id = ulid.Make().String()
	}
	w.Header().Set(HeaderRequestID, id)
	return r.WithContext(context.WithValue(r.Context(), requestIDKey{}, id))
}

func validRequestID(id string) bool {
	if id == "" || len(id) > maxRequestIDBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// LogHandler adds request_id to every record logged with the context of a
// request the gateway serves (logger.InfoContext(r.Context(), ...)), so a
// handler's lines can be told apart per request, and found from the ID an
// agent logged. Wrapping a LogHandler again changes nothing.
func LogHandler(h slog.Handler) slog.Handler {
	if lh, ok := h.(logHandler); ok {
		return lh
	}
	return logHandler{h}
}

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }
