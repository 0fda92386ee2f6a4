package testutil

import (
	"context"
	"runtime/pprof"
	"strings"
	"testing"
	"time"
)

// StartTimeout bounds how long Run waits for a component to be ready.
const StartTimeout = 30 * time.Second

// stopReportAfter is how long a stop runs before Run logs every goroutine.
const stopReportAfter = 20 * time.Second

// Run runs run(ctx) on its own goroutine until the test ends or stop is
// called, and returns once ready reports true (nil: at once). It fails the
// test if run returns before it is ready, if it is not ready within
// StartTimeout, or if it returns an error when stopped. stop is idempotent.
func Run(t testing.TB, run func(context.Context) error, ready func() bool) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var stopped bool
	var runErr error
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case runErr = <-done:
		case <-time.After(stopReportAfter):
			// Name what holds the stop up while it still can be seen.
			var goroutines strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&goroutines, 1)
			t.Logf("stop: still running after %s; goroutines:\n%s", stopReportAfter, goroutines.String())
			runErr = <-done
		}
		if runErr != nil {
			t.Errorf("stop: %v", runErr)
		}
	}
	t.Cleanup(stop)
	if ready == nil {
		return stop
	}
	deadline := time.Now().Add(StartTimeout)
	for !ready() {
		select {
		case err := <-done:
			stopped = true
			cancel()
			t.Fatalf("stopped before it was ready: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s", StartTimeout)
		}
	}
	return stop
}
