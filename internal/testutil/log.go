package testutil

import (
	"log/slog"
	"strings"
	"testing"
)

// Logger returns a logger whose lines go to the test's log at level and
// above, so that they show with the test that wrote them.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

// Writer returns an io.Writer that logs each write as a line of the test's
// log.
func Writer(t testing.TB) *TestWriter { return &TestWriter{t} }

// TestWriter writes to a test's log.
type TestWriter struct{ t testing.TB }

func (w *TestWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
