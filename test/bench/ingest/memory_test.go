package ingest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// memory is where a receiver's resident memory goes after a load: the
// kernel's split of RSS (/proc/<pid>/status) and, for receivers written in
// Go, the runtime's own accounting (its go_memstats_* metrics).
type memory struct {
	rssAnon, rssFile float64 // resident anonymous memory; resident file pages (mmapped chunks, binary)
	goStats          bool    // whether the go_memstats_* below were read
	heapAlloc        float64 // bytes of heap objects (live, and dead ones not yet swept)
	heapInuse        float64 // bytes in heap spans holding at least one object
	heapIdle         float64 // heap spans holding no object, not returned to the OS
	stacks           float64 // goroutine stacks in use
	runtimeOther     float64 // span, cache, GC and other runtime metadata
	nextGC           float64 // the heap size at which the next GC runs
}

// readMemory reads t's memory breakdown; a receiver without go_memstats_*
// metrics (VictoriaMetrics exposes its own) gets the kernel's split only.
func (t *target) readMemory(ctx context.Context) (memory, error) {
	var m memory
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.proc.PID()))
	if err != nil {
		return m, fmt.Errorf("%s: %w", t.name, err)
	}
	for line := range strings.Lines(string(data)) {
		key, rest, _ := strings.Cut(line, ":")
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		switch key {
		case "RssAnon":
			m.rssAnon = kb * 1024
		case "RssFile":
			m.rssFile = kb * 1024
		default:
			continue
		}
		if err != nil {
			return m, fmt.Errorf("%s: %s %q: %w", t.name, key, rest, err)
		}
	}
	gauges := map[string]float64{}
	err = t.get(ctx, "/metrics", func(resp *http.Response) error {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return err
		}
		for name, f := range fams {
			if strings.HasPrefix(name, "go_memstats_") && len(f.GetMetric()) == 1 {
				mm := f.GetMetric()[0]
				gauges[strings.TrimPrefix(name, "go_memstats_")] = mm.GetGauge().GetValue() + mm.GetCounter().GetValue() + mm.GetUntyped().GetValue()
			}
		}
		return nil
	})
	if err != nil {
		return m, fmt.Errorf("%s: read /metrics: %w", t.name, err)
	}
	if _, ok := gauges["heap_inuse_bytes"]; !ok {
		return m, nil
	}
	m.goStats = true
	m.heapAlloc = gauges["heap_alloc_bytes"]
	m.heapInuse = gauges["heap_inuse_bytes"]
	m.heapIdle = gauges["heap_idle_bytes"] - gauges["heap_released_bytes"]
	m.stacks = gauges["stack_inuse_bytes"]
	m.runtimeOther = gauges["mspan_inuse_bytes"] + gauges["mcache_inuse_bytes"] + gauges["buck_hash_sys_bytes"] +
		gauges["gc_sys_bytes"] + gauges["other_sys_bytes"]
	m.nextGC = gauges["next_gc_bytes"]
	return m, nil
}

// perSeries gives each part in bytes per active series.
func (m memory) perSeries(series float64) string {
	s := fmt.Sprintf("RSS anon %5.0f + file %4.0f", m.rssAnon/series, m.rssFile/series)
	if m.goStats {
		s += fmt.Sprintf("; Go heap objects %5.0f, in-use spans %5.0f, idle unreleased %4.0f, stacks %3.0f, runtime %3.0f, next GC at %5.0f",
			m.heapAlloc/series, m.heapInuse/series, m.heapIdle/series, m.stacks/series, m.runtimeOther/series, m.nextGC/series)
	}
	return s + " B/active series"
}
