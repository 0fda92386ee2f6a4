package ingest

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// The simulated fleet: 100 clusters reporting every 30s (the agent's
// default collection interval) for an hour.
const (
	fleetClusters = 100
	interval      = 30 * time.Second
	steps         = 120
)

// figures is one target's measurement.
type figures struct {
	createRate float64 // samples per CPU-second while every series is new (step 0)
	rate       float64 // samples per CPU-second once series exist (the other steps)
	wallRate   float64 // samples per wall-clock second, the other steps
	idle, rss  float64 // resident bytes before and after the load (settled)
	series     float64 // active series after the load
}

func (f figures) bytesPerSeries() float64 { return f.rss / f.series }

// mean averages each field over the iterations.
func mean(fs []figures) figures {
	var m figures
	for _, f := range fs {
		m.createRate += f.createRate / float64(len(fs))
		m.rate += f.rate / float64(len(fs))
		m.wallRate += f.wallRate / float64(len(fs))
		m.idle += f.idle / float64(len(fs))
		m.rss += f.rss / float64(len(fs))
		m.series += f.series / float64(len(fs))
	}
	return m
}

// BenchmarkIngest sends the same pre-generated remote-write 1.0 load to the
// hub, Debian's Prometheus 2.42 and Thanos receive v0.42.4, one after the
// other, and compares their samples per CPU-second and resident bytes per
// active series. The hub also gets the same samples as remote write 2.0,
// what the agent sends it (hub-rw2; outside the ratios, which compare the
// same bytes). Each iteration is a whole measurement of all of them; run it
// with -benchtime 1x (or Nx for a mean over N).
func BenchmarkIngest(b *testing.B) {
	root := repoRoot(b)
	hubBin := buildHub(b, root)
	thanosBin := testbed.ThanosBinary(b)

	f := newFleet(fleetClusters, defaultShape, interval, false)
	t0 := time.Now()
	l := newLoad(f, time.Now().Add(-steps*interval).Truncate(interval), steps, true)
	b.Logf("load: %d clusters, %d series, %d steps of %s: %d samples in %d requests, %.1f MiB snappy (%.1f MiB as remote write 2.0), generated in %s",
		len(f.clusters), f.seriesCount(), steps, interval, l.samples, len(f.clusters)*steps, float64(l.bytes)/(1<<20),
		float64(l.bytesV2)/(1<<20), time.Since(t0).Round(100*time.Millisecond))
	p := newPKI(b, f.clusters)

	runs := []struct {
		name  string
		v2    bool
		start func() *target
	}{
		{"hub", false, func() *target { return startHub(b, hubBin, p) }},
		{"prom", false, func() *target { return startPrometheus(b, p) }},
		{"thanos", false, func() *target { return startThanos(b, thanosBin, p) }},
		{"hub-rw2", true, func() *target { return startHub(b, hubBin, p) }},
	}
	all := map[string][]figures{}
	for b.Loop() {
		for _, r := range runs {
			clients := make([]*http.Client, len(f.clusters))
			for c := range clients {
				clients[c] = p.httpClient(p.clients[c])
			}
			t := r.start()
			all[r.name] = append(all[r.name], measureIngest(b, t, r.name, l, clients, r.v2))
			t.proc.Stop(30 * time.Second)
		}
	}
	// One log call: the testing package keeps only ten lines of a
	// benchmark's log.
	var table strings.Builder
	m := map[string]figures{}
	for _, r := range runs {
		m[r.name] = mean(all[r.name])
		lo := slices.MinFunc(all[r.name], func(a, b figures) int { return cmp.Compare(a.rate, b.rate) })
		hi := slices.MaxFunc(all[r.name], func(a, b figures) int { return cmp.Compare(a.rate, b.rate) })
		fmt.Fprintf(&table, "\n  %-7s %7.0f samples/s/core (%.0f–%.0f), %7.0f per wall second; new series %6.0f/s/core; RSS idle %4.0f MiB, after %4.0f MiB = %5.0f B/series",
			r.name, m[r.name].rate, lo.rate, hi.rate, m[r.name].wallRate, m[r.name].createRate, m[r.name].idle/(1<<20), m[r.name].rss/(1<<20), m[r.name].bytesPerSeries())
		b.ReportMetric(m[r.name].rate, r.name+"-samples/s/core")
		b.ReportMetric(m[r.name].createRate, r.name+"-new-series-samples/s/core")
		b.ReportMetric(m[r.name].bytesPerSeries(), r.name+"-bytes/series")
	}
	b.Logf("means over %d iterations:%s", b.N, table.String())
	b.ReportMetric(m["hub"].rate/m["prom"].rate, "ratio-vs-prom")
	b.ReportMetric(m["hub"].rate/m["thanos"].rate, "ratio-vs-thanos")
	b.ReportMetric(m["hub"].bytesPerSeries()/m["prom"].bytesPerSeries(), "rss-ratio-vs-prom")
	b.ReportMetric(m["hub"].bytesPerSeries()/m["thanos"].bytesPerSeries(), "rss-ratio-vs-thanos")
}

// measureIngest sends the load to t and measures its CPU time over two
// phases (step 0 creates every series; the rest append to them) and its
// settled RSS afterwards, then checks that t stored every sample of every
// series. A refusal or a missing sample fails the benchmark.
func measureIngest(b *testing.B, t *target, name string, l *load, clients []*http.Client, v2 bool) figures {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	must := func(v float64, err error) float64 {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		return v
	}
	fig := figures{idle: must(t.rssBytes())}
	cpu0 := must(t.cpuSeconds())
	create := send(ctx, t, l, clients, 0, 1, v2)
	cpu1 := must(t.cpuSeconds())
	profiled := t.profile(ctx, name)
	rest := send(ctx, t, l, clients, 1, l.steps, v2)
	cpu2 := must(t.cpuSeconds())
	if err := <-profiled; err != nil {
		b.Error(err)
	}
	settleCtx, settleCancel := context.WithTimeout(ctx, 20*time.Second)
	fig.rss = must(t.settledRSS(settleCtx))
	settleCancel()

	perStep := float64(l.fleet.samplesPerStep())
	fig.createRate = perStep / (cpu1 - cpu0)
	fig.rate = perStep * float64(l.steps-1) / (cpu2 - cpu1)
	fig.wallRate = perStep * float64(l.steps-1) / rest.wall.Seconds()
	for _, s := range []sendStats{create, rest} {
		if s.rejected > 0 {
			b.Errorf("%s refused %d of %d requests, e.g. %v", t.name, s.rejected, s.requests, s.errs)
		}
	}
	series, samples, err := t.tsdbTotals(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fig.series = series
	if int(series) != l.fleet.seriesCount() || int(samples) != l.samples {
		b.Errorf("%s holds %.0f series and appended %.0f samples; %d and %d were sent", t.name, series, samples, l.fleet.seriesCount(), l.samples)
	}
	if t.promAPI {
		// Read back: every series answers a query just after the last step.
		q := `count({__name__=~"k8s_.+"})`
		if got := must(t.instantQuery(ctx, q, l.start.Add(time.Duration(l.steps)*interval))); int(got) != l.fleet.seriesCount() {
			b.Errorf("%s: %s = %.0f, want %d", t.name, q, got, l.fleet.seriesCount())
		}
	}
	return fig
}
