package controller

import (
	"context"
	"fmt"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
)

// Runner runs one controller loop for an extension. A Runner runs once.
type Runner struct {
	id   *componentstatus.InstanceID
	stop func(error)

	mu       sync.Mutex
	host     component.Host
	cancel   context.CancelFunc
	done     chan struct{}
	stopping bool
	err      error                  // what ended the loop before Shutdown
	health   *componentstatus.Event // the last health reported
}

// NewRunner returns the Runner of the extension id. stop, when set, stops
// the agent with the error that ended the loop (see Go).
func NewRunner(id component.ID, stop func(error)) *Runner {
	return &Runner{id: componentstatus.NewInstanceID(id, component.KindExtension), stop: stop}
}

// Go runs run in a goroutine of its own until Shutdown cancels its context.
// When run returns an error before that, the error is reported as the
// extension's fatal status and the agent is stopped: by the Collector
// itself where its host takes an extension's status, otherwise by stop.
// Shutdown then returns the error, so that the process exits non-zero (the
// Collector exits 0 after a fatal status when its own shutdown goes well).
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
		stopping := r.stopping
		r.mu.Unlock()
		if stopping {
			return
		}
		// A Collector that takes the fatal status reads it on an
		// unbuffered channel only while it runs, so the report must not
		// hold up this goroutine, which Shutdown waits for.
		go func() {
			if !r.report(componentstatus.NewFatalErrorEvent(err)) && r.stop != nil {
				r.stop(err)
			}
		}()
	}()
}

// ReportHealth reports a running controller's health as the extension's
// component status: an error as a recoverable error (the controller
// retries), nil as OK. It fits the controllers' Config.ReportHealth; calls
// before Go or after Shutdown began are dropped.
func (r *Runner) ReportHealth(err error) {
	r.mu.Lock()
	stopping := r.stopping
	r.mu.Unlock()
	if stopping {
		return
	}
	e := componentstatus.NewEvent(componentstatus.StatusOK)
	if err != nil {
		e = componentstatus.NewRecoverableErrorEvent(err)
	}
	r.mu.Lock()
	r.health = e
	r.mu.Unlock()
	r.report(e)
}

// Ready reports the last health again; the extension calls it from its
// PipelineWatcher's Ready. The Collector reports an extension OK once its
// Start returns, which can come after the loop's first report.
func (r *Runner) Ready() {
	r.mu.Lock()
	e, stopping := r.health, r.stopping
	r.mu.Unlock()
	if e != nil && !stopping {
		r.report(e)
	}
}

// report gives an event to the Collector, and says whether the Collector
// acts on it. A host that takes status reports gets it (Collector releases
// after v0.142, which record extensions' reports and stop on a fatal one).
// The v0.142 host of an extension does not take them: the event goes
// straight to the extensions that watch statuses (healthcheckv2), as the
// Collector hands them the statuses of other components.
func (r *Runner) report(e *componentstatus.Event) bool {
	r.mu.Lock()
	host := r.host
	r.mu.Unlock()
	if host == nil {
		return true
	}
	if rep, ok := host.(componentstatus.Reporter); ok {
		rep.Report(e)
		return true
	}
	for _, ext := range host.GetExtensions() {
		if w, ok := ext.(componentstatus.Watcher); ok {
			w.ComponentStatusChanged(r.id, e)
		}
	}
	return false
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
