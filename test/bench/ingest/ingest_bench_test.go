package ingest

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
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
	series     float64 // series active at the end of the load
	mem        memory  // where the settled RSS goes
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
		m.mem.rssAnon += f.mem.rssAnon / float64(len(fs))
		m.mem.rssFile += f.mem.rssFile / float64(len(fs))
		m.mem.goStats = f.mem.goStats
		m.mem.heapAlloc += f.mem.heapAlloc / float64(len(fs))
		m.mem.heapInuse += f.mem.heapInuse / float64(len(fs))
		m.mem.heapIdle += f.mem.heapIdle / float64(len(fs))
		m.mem.stacks += f.mem.stacks / float64(len(fs))
		m.mem.runtimeOther += f.mem.runtimeOther / float64(len(fs))
		m.mem.nextGC += f.mem.nextGC / float64(len(fs))
	}
	return m
}

// The receivers under test, each a process of its own pinned to one core.
const (
	hubName    = "hub"
	vmName     = "victoria-metrics"
	thanosName = "thanos-receive"
	promName   = "prometheus-v3"
)

// receivers are the names of the targets in the order they run, and
// whether each speaks remote write 2.0.
var receivers = []struct {
	name string
	v2   bool
}{{hubName, true}, {vmName, false}, {thanosName, false}, {promName, true}}

// receiversEnv names the receivers to measure, comma-separated (e.g.
// "hub" to compare two builds of the hub alone); unset, all of them.
const receiversEnv = "FLEETPULSE_BENCH_RECEIVERS"

// measured reports whether receiver name is to be measured.
func measured(name string) bool {
	only := os.Getenv(receiversEnv)
	return only == "" || slices.Contains(strings.Split(only, ","), name)
}

// Steps of each shape's load: enough for the existing-series phase to
// dominate, short enough for every receiver to take every shape in one run.
const (
	fleetSteps = 40 // 20 minutes at 30s
	largeSteps = 30 // 30 minutes at 1m
	churnSteps = 40 // 40 minutes at 1m: three churn events
	churnEvery = 10 // 10 minutes at 1m
)

// BenchmarkIngest sends each workload shape's pre-generated load to the hub,
// VictoriaMetrics, Thanos receive and Prometheus v3, one after the other
// (each pinned to the same core), and compares their samples per CPU-second
// and resident bytes per active series. Shapes are sub-benchmarks:
//
//   - fleet: 100 small clusters (the agent's inventory, ~1,000 series each),
//     one request per cluster every 30s on its own connection;
//   - large: one cluster of 100,000 series of ten labels, 2,000 series per
//     request, four concurrent senders, every minute;
//   - churn: large with a tenth of its pods (so of its series) replaced every
//     ten minutes;
//   - fleet-rw2, large-rw2: the same samples as remote write 2.0, to the
//     receivers that speak it (VictoriaMetrics and Thanos receive do not).
//
// Everything goes over TLS with client certificates. Each iteration is a
// whole measurement of every receiver; run it with -benchtime 1x (or Nx for
// a mean over N).
func BenchmarkIngest(b *testing.B) {
	root := repoRoot(b)
	bins := map[string]string{
		hubName:    buildHub(b, root),
		vmName:     vmPeer.binary(b, root),
		thanosName: testbed.ThanosBinary(b),
		promName:   promPeer.binary(b, root),
	}
	var (
		fleetOnce, largeOnce, churnOnce sync.Once
		fleetLoad, largeLoad, churnLoad *load
	)
	lazy := func(once *sync.Once, l **load, gen func() *load) func() *load {
		return func() *load { once.Do(func() { *l = gen() }); return *l }
	}
	fleetL := lazy(&fleetOnce, &fleetLoad, func() *load {
		f := newFleet(fleetClusters, defaultShape, interval, false)
		return newLoad(f, time.Now().Add(-fleetSteps*interval).Truncate(interval), fleetSteps, true)
	})
	bigL := func(once *sync.Once, l **load, every, steps int) func() *load {
		return lazy(once, l, func() *load {
			c := largeCluster(every)
			return newBigLoad(c, time.Now().Add(-time.Duration(steps)*c.interval).Truncate(c.interval), steps, every == 0)
		})
	}
	shapes := []struct {
		name string
		v2   bool
		load func() *load
	}{
		{"fleet", false, fleetL},
		{"fleet-rw2", true, fleetL},
		{"large", false, bigL(&largeOnce, &largeLoad, 0, largeSteps)},
		{"large-rw2", true, bigL(&largeOnce, &largeLoad, 0, largeSteps)},
		{"churn", false, bigL(&churnOnce, &churnLoad, churnEvery, churnSteps)},
	}
	for _, sh := range shapes {
		b.Run(sh.name, func(b *testing.B) {
			t0 := time.Now()
			l := sh.load()
			b.Logf("load: %d clusters, %d senders, %d active series (%d over the load), %d steps of %s: %d samples, %.1f MiB snappy (%.1f MiB as remote write 2.0), ready in %s",
				len(l.clusters), len(l.senders), l.active, l.distinct, l.steps, l.interval, l.samples,
				float64(l.bytes)/(1<<20), float64(l.bytesV2)/(1<<20), time.Since(t0).Round(100*time.Millisecond))
			benchShape(b, sh.name, bins, l, sh.v2)
		})
	}
}

// benchShape measures every receiver on one load and reports the table.
func benchShape(b *testing.B, shape string, bins map[string]string, l *load, v2 bool) {
	p := newPKI(b, l.clusters)
	starts := map[string]func() *target{
		hubName:    func() *target { return startHub(b, bins[hubName], p) },
		vmName:     func() *target { return startVictoriaMetrics(b, bins[vmName], p) },
		thanosName: func() *target { return startThanos(b, bins[thanosName], p) },
		promName:   func() *target { return startPrometheus(b, bins[promName], p) },
	}
	all := map[string][]figures{}
	for b.Loop() {
		for _, r := range receivers {
			if (v2 && !r.v2) || !measured(r.name) {
				continue
			}
			clients := make([]*http.Client, len(l.senders))
			for i, c := range l.senders {
				clients[i] = p.httpClient(p.clients[c])
			}
			t := starts[r.name]()
			all[r.name] = append(all[r.name], measureIngest(b, t, shape+"-"+r.name, l, clients, v2))
			t.proc.Stop(30 * time.Second)
		}
	}
	// One log call: the testing package keeps only ten lines of a
	// benchmark's log.
	var table strings.Builder
	m := map[string]figures{}
	for _, r := range receivers {
		if !measured(r.name) {
			continue
		}
		if v2 && !r.v2 {
			fmt.Fprintf(&table, "\n  %-16s does not speak remote write 2.0", r.name)
			continue
		}
		m[r.name] = mean(all[r.name])
		lo := slices.MinFunc(all[r.name], func(a, b figures) int { return cmp.Compare(a.rate, b.rate) })
		hi := slices.MaxFunc(all[r.name], func(a, b figures) int { return cmp.Compare(a.rate, b.rate) })
		fmt.Fprintf(&table, "\n  %-16s %8.0f samples/s/core (%.0f–%.0f), %8.0f per wall second; new series %7.0f/s/core; RSS idle %4.0f MiB, after %4.0f MiB = %5.0f B/active series",
			r.name, m[r.name].rate, lo.rate, hi.rate, m[r.name].wallRate, m[r.name].createRate, m[r.name].idle/(1<<20), m[r.name].rss/(1<<20), m[r.name].bytesPerSeries())
		fmt.Fprintf(&table, "\n  %-16s memory: %s", "", m[r.name].mem.perSeries(m[r.name].series))
		b.ReportMetric(m[r.name].rate, r.name+"-samples/s/core")
		b.ReportMetric(m[r.name].createRate, r.name+"-new-series-samples/s/core")
		b.ReportMetric(m[r.name].bytesPerSeries(), r.name+"-bytes/series")
	}
	b.Logf("means over %d iterations:%s", b.N, table.String())
	for _, peer := range []string{vmName, thanosName, promName} {
		if _, ok := m[peer]; !ok || !measured(hubName) {
			continue
		}
		b.ReportMetric(m[hubName].rate/m[peer].rate, "ratio-vs-"+peer)
		b.ReportMetric(m[hubName].bytesPerSeries()/m[peer].bytesPerSeries(), "rss-ratio-vs-"+peer)
	}
}

// measureIngest sends the load to t and measures its CPU time over two
// phases (step 0 creates every series; the rest append to them, and create
// the churned-in ones) and its settled RSS afterwards (per active series), then checks that t stored every sample of every
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
	mem, err := t.readMemory(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fig.mem = mem

	fig.createRate = float64(l.stepSamples[0]) / (cpu1 - cpu0)
	fig.rate = float64(l.rest()) / (cpu2 - cpu1)
	fig.wallRate = float64(l.rest()) / rest.wall.Seconds()
	for _, s := range []sendStats{create, rest} {
		if s.rejected > 0 {
			b.Errorf("%s refused %d of %d requests, e.g. %v", t.name, s.rejected, s.requests, s.errs)
		}
	}
	series, samples, err := t.tsdbTotals(ctx)
	if err != nil {
		b.Fatal(err)
	}
	fig.series = float64(l.active)
	if (series >= 0 && int(series) != l.distinct) || int(samples) != l.samples {
		b.Errorf("%s holds %.0f series and appended %.0f samples; %d and %d were sent", t.name, series, samples, l.distinct, l.samples)
	}
	if t.promAPI {
		if t.vm {
			// Make the newest samples searchable now rather than within
			// the next second.
			if err := t.get(ctx, "/internal/force_flush", nil); err != nil {
				b.Fatal(err)
			}
		}
		// Read back: every active series answers a query just after the
		// last step.
		q := `count({k8s_cluster_name=~"cluster-.+"})`
		if got := must(t.instantQuery(ctx, q, l.start.Add(time.Duration(l.steps)*l.interval))); int(got) != l.active {
			b.Errorf("%s: %s = %.0f, want %d", t.name, q, got, l.active)
		}
	}
	return fig
}
