package testutil

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Logger returns a logger whose lines go to the test's log at level and
// above, so that they show with the test that wrote them.
func Logger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(Writer(t), &slog.HandlerOptions{Level: level}))
}

// Writer returns an io.Writer that logs each write as a line of the test's
// log. Lines written after the test's cleanups have run are dropped: a
// goroutine of a library (a reflector stopping) may log late, and testing
// panics on a log after its test completed, failing every test of the
// package.
func Writer(t testing.TB) *TestWriter {
	w := &TestWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.ended = true
	})
	return w
}

// TestWriter writes to a test's log.
type TestWriter struct {
	t     testing.TB
	mu    sync.Mutex
	ended bool
}

func (w *TestWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}
