package chartsource

import (
	"errors"
	"fmt"
	"time"
)

// Limits bound what one render fetches and produces.
type Limits struct {
	// MaxIndexBytes bounds a repository's index.yaml.
	MaxIndexBytes int64
	// MaxChartBytes bounds the chart archive (and each OCI blob) as fetched.
	MaxChartBytes int64
	// FetchTimeout bounds each fetch: index, archive, OCI pull.
	FetchTimeout time.Duration
	// RenderTimeout bounds the template engine.
	RenderTimeout time.Duration
	// MaxManifests bounds the rendered objects.
	MaxManifests int
	// MaxRenderedBytes bounds the rendered objects' JSON together: they are
	// stored in one revision object, and the hub's store takes objects of
	// about 1.5 MiB at most.
	MaxRenderedBytes int64
}

// DefaultLimits: a 16 MiB index, a 1 MiB archive, 30 s per fetch, 10 s to
// render, 500 objects and 768 KiB of them.
func DefaultLimits() Limits {
	return Limits{
		MaxIndexBytes:    16 << 20,
		MaxChartBytes:    1 << 20,
		FetchTimeout:     30 * time.Second,
		RenderTimeout:    10 * time.Second,
		MaxManifests:     500,
		MaxRenderedBytes: 768 << 10,
	}
}

// Validate returns every limit that is not positive.
func (l Limits) Validate() error {
	var errs []error
	for name, v := range map[string]int64{
		"maxIndexBytes": l.MaxIndexBytes, "maxChartBytes": l.MaxChartBytes, "fetchTimeout": int64(l.FetchTimeout),
		"renderTimeout": int64(l.RenderTimeout), "maxManifests": int64(l.MaxManifests), "maxRenderedBytes": l.MaxRenderedBytes,
	} {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("chart source limit %s must be positive", name))
		}
	}
	return errors.Join(errs...)
}
