package controller

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
)

// Runner runs one controller loop for an extension. The zero value is
// ready; a Runner runs once.
type Runner struct {
	mu       sync.Mutex
	host     component.Host
	cancel   context.CancelFunc
	done     chan struct{}
	stopping bool
	err      error // what ended the loop before Shutdown
}

// Go runs run in a goroutine of its own until Shutdown cancels its context.
// When run returns an error before that, the error is reported as a fatal
// component status, which makes the Collector stop, and Shutdown returns it
// so that the process exits non-zero (the Collector itself exits 0 after a
// fatal status when its own shutdown goes well).
func (r *Runner) Go(host component.Host, run func(context.Context) error) {
	// Not the context Start was given: that one belongs to the start.
	ctx, cancel := context.WithCancel(context.Background())
	r.mu.Lock()
	r.host, r.cancel, r.done = host, cancel, make(chan struct{})
	r.mu.Unlock()
	go func() {
		defer close(r.done)
		err := run(ctx)
		if err == nil || ctx.Err() != nil {
			return
		}
		r.mu.Lock()
		r.err = err
		report := !r.stopping
		r.mu.Unlock()
		if report {
			// The Collector takes a fatal status on an unbuffered channel
			// that it reads only while it runs, so the report must not hold
			// up this goroutine, which Shutdown waits for.
			go componentstatus.ReportStatus(host, componentstatus.NewFatalErrorEvent(err))
		}
	}()
}

// ReportHealth reports a running controller's health as the extension's
// component status: an error as a recoverable error (the controller
// retries), nil as OK. It fits the controllers' Config.ReportHealth; calls
// before Go or after Shutdown began are dropped.
func (r *Runner) ReportHealth(err error) {
	r.mu.Lock()
	host, stopping := r.host, r.stopping
	r.mu.Unlock()
	if host == nil || stopping {
		return
	}
	if err != nil {
		componentstatus.ReportStatus(host, componentstatus.NewRecoverableErrorEvent(err))
		return
	}
	componentstatus.ReportStatus(host, componentstatus.NewEvent(componentstatus.StatusOK))
}

// Shutdown stops the loop and waits for it, at most until ctx ends. It
// returns the error that ended the loop before Shutdown, if one did. It is
// safe to call without Go, and more than once.
func (r *Runner) Shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.stopping = true
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the controller to stop: %w", ctx.Err())
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
