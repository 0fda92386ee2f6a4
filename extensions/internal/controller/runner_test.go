package controller

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componentstatus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// statusHost is a Collector host that keeps the statuses reported to it, as
// Collector releases after v0.142 give extensions.
type statusHost struct {
	mu     sync.Mutex
	events []*componentstatus.Event
}

func (h *statusHost) GetExtensions() map[component.ID]component.Component { return nil }

func (h *statusHost) Report(e *componentstatus.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.events = append(h.events, e)
}

// waitFor polls until the host holds n events.
func (h *statusHost) waitFor(t *testing.T, n int) []*componentstatus.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h.mu.Lock()
		events := append([]*componentstatus.Event(nil), h.events...)
		h.mu.Unlock()
		if len(events) >= n {
			return events
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d status events, want %d", len(events), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestHealthBecomesStatus(t *testing.T) {
	host := &statusHost{}
	r := NewRunner(component.MustNewID("fleetpulse_work"), nil)
	r.ReportHealth(errors.New("before Go")) // dropped: nothing runs yet
	r.Go(host, func(ctx context.Context) error {
		r.ReportHealth(errors.New("hub unreachable"))
		r.ReportHealth(nil)
		<-ctx.Done()
		return nil
	})
	events := host.waitFor(t, 2)
	if events[0].Status() != componentstatus.StatusRecoverableError || events[0].Err().Error() != "hub unreachable" {
		t.Errorf("first event %v %v, want a recoverable error: hub unreachable", events[0].Status(), events[0].Err())
	}
	if events[1].Status() != componentstatus.StatusOK {
		t.Errorf("second event %v, want OK", events[1].Status())
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	r.ReportHealth(errors.New("after Shutdown")) // dropped: the service reports the stop
	if n := len(host.waitFor(t, 2)); n != 2 {
		t.Errorf("%d events, want 2", n)
	}
}

func TestLoopErrorIsFatalAndShutdownsResult(t *testing.T) {
	host := &statusHost{}
	r := NewRunner(component.MustNewID("fleetpulse_work"), nil)
	ended := errors.New("cluster deregistered")
	r.Go(host, func(context.Context) error { return ended })
	events := host.waitFor(t, 1)
	if events[0].Status() != componentstatus.StatusFatalError || !errors.Is(events[0].Err(), ended) {
		t.Errorf("event %v %v, want fatal: %v", events[0].Status(), events[0].Err(), ended)
	}
	if err := r.Shutdown(context.Background()); !errors.Is(err, ended) {
		t.Errorf("Shutdown = %v, want %v", err, ended)
	}
}

func TestShutdownWithoutGoAndTwice(t *testing.T) {
	r := NewRunner(component.MustNewID("fleetpulse_work"), nil)
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.Go(&statusHost{}, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	for range 2 {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v (a loop ended by its context is no error)", err)
		}
	}
}

func TestShutdownGivesUpWithItsContext(t *testing.T) {
	r := NewRunner(component.MustNewID("fleetpulse_work"), nil)
	release := make(chan struct{})
	defer close(release)
	r.Go(&statusHost{}, func(context.Context) error { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline", err)
	}
}

// watcherHost is the host Collector v0.142 gives an extension: it takes no
// status, but holds extensions that watch statuses.
type watcherHost struct{ watcher *watcher }

func (h watcherHost) GetExtensions() map[component.ID]component.Component {
	return map[component.ID]component.Component{component.MustNewID("healthcheckv2"): h.watcher}
}

type watcher struct {
	component.StartFunc
	component.ShutdownFunc
	statusHost
	sources []string
}

func (w *watcher) ComponentStatusChanged(source *componentstatus.InstanceID, e *componentstatus.Event) {
	w.mu.Lock()
	w.sources = append(w.sources, source.Kind().String()+":"+source.ComponentID().String())
	w.mu.Unlock()
	w.Report(e)
}

// Where the host takes no status, the watching extensions get it, under
// the extension's own name, and the agent is stopped on a fatal one.
func TestStatusReachesWatchersAndStopStops(t *testing.T) {
	w := &watcher{}
	stopped := make(chan error, 1)
	r := NewRunner(component.MustNewID("fleetpulse_registration"), func(err error) { stopped <- err })
	ended := errors.New("cluster deregistered")
	unhealthy := make(chan struct{})
	r.Go(watcherHost{w}, func(ctx context.Context) error {
		r.ReportHealth(errors.New("hub unreachable"))
		<-unhealthy
		return ended
	})
	w.waitFor(t, 1)
	close(unhealthy)
	select {
	case err := <-stopped:
		if !errors.Is(err, ended) {
			t.Errorf("stopped with %v, want %v", err, ended)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent was not stopped")
	}
	events := w.waitFor(t, 2)
	if events[0].Status() != componentstatus.StatusRecoverableError || events[1].Status() != componentstatus.StatusFatalError {
		t.Errorf("statuses %v, %v; want a recoverable error, then fatal", events[0].Status(), events[1].Status())
	}
	w.mu.Lock()
	if w.sources[0] != "Extension:fleetpulse_registration" {
		t.Errorf("source %q, want the extension", w.sources[0])
	}
	w.mu.Unlock()
	if err := r.Shutdown(context.Background()); !errors.Is(err, ended) {
		t.Errorf("Shutdown = %v, want %v", err, ended)
	}
}

func TestLoggerWritesThroughZap(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	l := Logger(zap.New(core)).With("cluster", "east").WithGroup("g")
	l.Debug("not at this level")
	l.Warn("heartbeat failed", "err", errors.New("refused"), slog.Group("hub", "url", "https://hub"))
	all := logs.All()
	if len(all) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(all), all)
	}
	e := all[0]
	if e.Level != zapcore.WarnLevel || e.Message != "heartbeat failed" {
		t.Errorf("line %v %q", e.Level, e.Message)
	}
	fields := e.ContextMap()
	for k, want := range map[string]string{"cluster": "east", "g.err": "refused", "g.hub.url": "https://hub"} {
		if got := fields[k]; got != want {
			t.Errorf("%s = %v, want %s (all %v)", k, got, want, fields)
		}
	}
	if !e.Caller.Defined {
		t.Error("no caller")
	}
}

// The Collector reports an extension OK when its Start returns, which can
// come after the loop's first report: Ready says the last health again.
func TestReadyRepeatsTheLastHealth(t *testing.T) {
	host := &statusHost{}
	r := NewRunner(component.MustNewID("fleetpulse_work"), nil)
	reported := make(chan struct{})
	r.Go(host, func(ctx context.Context) error {
		r.ReportHealth(errors.New("records unreadable"))
		close(reported)
		<-ctx.Done()
		return nil
	})
	<-reported
	host.Report(componentstatus.NewEvent(componentstatus.StatusOK)) // the Collector, after Start
	r.Ready()
	events := host.waitFor(t, 3)
	if last := events[len(events)-1]; last.Status() != componentstatus.StatusRecoverableError || last.Err().Error() != "records unreadable" {
		t.Errorf("last status %v %v, want the recoverable error again", last.Status(), last.Err())
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
