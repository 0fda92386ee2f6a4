package main

import (
	"errors"
	"fmt"
	"runtime/debug"
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/multierr"
)

func TestRuntimeOptions(t *testing.T) {
	gc, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(gc); debug.SetMemoryLimit(limit) })
	for _, tc := range []struct {
		name          string
		env           map[string]string
		args          []string
		wantGCPercent int
		wantLimit     int64
	}{
		{"defaults", nil, nil, defaultGCPercent, defaultMemoryLimitMiB << 20},
		{"environment wins over defaults", map[string]string{"GOGC": "80", "GOMEMLIMIT": "1GiB"}, nil, 100, 1 << 40},
		{"flags win over environment", map[string]string{"GOGC": "80", "GOMEMLIMIT": "1GiB"}, []string{"--go-gc-percent=70", "--go-memory-limit-mib=200"}, 70, 200 << 20},
		{"no limit", nil, []string{"--go-memory-limit-mib=0"}, defaultGCPercent, 1<<63 - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			// What the runtime read from the environment at start.
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(1 << 40)
			f := pflag.NewFlagSet("agent", pflag.ContinueOnError)
			var rt runtimeOptions
			addRuntimeFlags(f, &rt)
			if err := f.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			rt.apply()
			if got := debug.SetGCPercent(100); got != tc.wantGCPercent {
				t.Errorf("GC percent = %d, want %d", got, tc.wantGCPercent)
			}
			if got := debug.SetMemoryLimit(-1); got != tc.wantLimit {
				t.Errorf("memory limit = %d, want %d", got, tc.wantLimit)
			}
		})
	}
}

// TestOnlyFinalSelfTelemetryPush: the Collector's error for a stop whose
// only failure is the meter provider's last push is recognised, and
// nothing else is.
func TestOnlyFinalSelfTelemetryPush(t *testing.T) {
	push := errors.New("failed to upload metrics: rpc error: code = Unavailable desc = connection refused")
	meter := fmt.Errorf("failed to shutdown meter provider: %w", push)
	pipelines := errors.New("failed to shutdown pipelines: exporter stuck")
	service := func(errs ...error) error {
		return fmt.Errorf("failed to shutdown service after error: %w", multierr.Combine(errs...))
	}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{service(meter), true},
		{service(pipelines, meter), false},
		{multierr.Combine(errors.New("failed to shutdown config provider: x"), service(meter)), false},
		{meter, false},
		{errors.New("cannot start pipelines: bad config"), false},
	} {
		if got := onlyFinalSelfTelemetryPush(tc.err); got != tc.want {
			t.Errorf("onlyFinalSelfTelemetryPush(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
