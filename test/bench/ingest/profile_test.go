package ingest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
)

// profileEnv names a folder; when set, each target's CPU profile over the
// first profileSeconds of the existing-series phase and its heap profile
// after the load are written there (every target serves Go's
// /debug/pprof on its HTTP port).
const (
	profileEnv     = "FLEETPULSE_BENCH_PROFILE"
	profileSeconds = "15"
)

// profile starts fetching t's CPU profile (files named after the run), then its heap profile, when
// profileEnv is set; the channel yields the outcome once both are written.
func (t *target) profile(ctx context.Context, name string) <-chan error {
	done := make(chan error, 1)
	dir := os.Getenv(profileEnv)
	if dir == "" {
		done <- nil
		return done
	}
	go func() {
		err := t.fetch(ctx, "/debug/pprof/profile?seconds="+profileSeconds, filepath.Join(dir, name+".cpu.pprof"))
		if err == nil {
			// gc=1: the heap profile is of the live heap, collected just before.
			err = t.fetch(ctx, "/debug/pprof/heap?gc=1", filepath.Join(dir, name+".heap.pprof"))
		}
		done <- err
	}()
	return done
}

func (t *target) fetch(ctx context.Context, path, file string) error {
	return t.get(ctx, path, func(resp *http.Response) error {
		f, err := os.Create(file)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			_ = f.Close()
			return fmt.Errorf("%s: write %s: %w", t.name, file, err)
		}
		return f.Close()
	})
}
