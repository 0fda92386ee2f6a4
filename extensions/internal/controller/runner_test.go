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

// statusHost is a Collector host that keeps the statuses reported to it.
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
	var r Runner
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
	var r Runner
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
	var r Runner
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
	var r Runner
	release := make(chan struct{})
	defer close(release)
	r.Go(&statusHost{}, func(context.Context) error { <-release; return nil })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown = %v, want the context's deadline", err)
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
