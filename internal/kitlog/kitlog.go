// Package kitlog lets the parts that log through go-kit (Thanos, dskit)
// log through the hub's slog logger.
package kitlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/go-kit/log"
)

// New returns a go-kit logger that writes to l: go-kit's level and msg
// keys become the record's level and message.
func New(l *slog.Logger) log.Logger {
	return log.LoggerFunc(func(kv ...any) error {
		level, msg := slog.LevelInfo, ""
		attrs := make([]any, 0, len(kv))
		for i := 0; i+1 < len(kv); i += 2 {
			k := fmt.Sprint(kv[i])
			switch k {
			case "level":
				switch fmt.Sprint(kv[i+1]) {
				case "debug":
					level = slog.LevelDebug
				case "warn":
					level = slog.LevelWarn
				case "error":
					level = slog.LevelError
				}
			case "msg":
				msg = fmt.Sprint(kv[i+1])
			case "ts", "caller":
			default:
				v := kv[i+1]
				// slog's text handler prints such values with %+v, which
				// for Thanos's pkg/errors errors adds a stack trace.
				if err, ok := v.(error); ok {
					v = err.Error()
				}
				attrs = append(attrs, k, v)
			}
		}
		l.Log(context.Background(), level, msg, attrs...)
		return nil
	})
}
