package bench

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// fleetOptions are BenchmarkFleetRegistration's knobs, from the environment.
type fleetOptions struct {
	clusters            int           // FLEETPULSE_FLEET_CLUSTERS
	period              time.Duration // FLEETPULSE_FLEET_HEARTBEAT_PERIOD, whole seconds
	gracePeriods        int           // FLEETPULSE_FLEET_GRACE_PERIODS (the hub's --registration.grace-periods)
	interval            time.Duration // FLEETPULSE_FLEET_COLLECTION_INTERVAL
	registerConcurrency int           // FLEETPULSE_FLEET_REGISTER_CONCURRENCY
	steady              time.Duration // FLEETPULSE_FLEET_STEADY: the steady-state window
	lost                int           // FLEETPULSE_FLEET_LOST: clusters taken away at the end
	maxRSS              float64       // FLEETPULSE_FLEET_MAX_RSS_GIB: the hub is stopped above this
	starve              bool          // FLEETPULSE_FLEET_STARVE=1: a second loss with the apiserver starved
}

func fleetOptionsFromEnv(b *testing.B) fleetOptions {
	b.Helper()
	o := fleetOptions{clusters: 10000, period: 30 * time.Second, gracePeriods: 3, interval: 30 * time.Second,
		registerConcurrency: 16, lost: 100, maxRSS: 16}
	ints := map[string]*int{"FLEETPULSE_FLEET_CLUSTERS": &o.clusters, "FLEETPULSE_FLEET_GRACE_PERIODS": &o.gracePeriods,
		"FLEETPULSE_FLEET_REGISTER_CONCURRENCY": &o.registerConcurrency, "FLEETPULSE_FLEET_LOST": &o.lost}
	for env, p := range ints {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive integer", env, v)
			}
			*p = n
		}
	}
	durs := map[string]*time.Duration{"FLEETPULSE_FLEET_HEARTBEAT_PERIOD": &o.period, "FLEETPULSE_FLEET_COLLECTION_INTERVAL": &o.interval,
		"FLEETPULSE_FLEET_STEADY": &o.steady}
	for env, p := range durs {
		if v := os.Getenv(env); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				b.Fatalf("%s=%q: want a positive duration", env, v)
			}
			*p = d
		}
	}
	if v := os.Getenv("FLEETPULSE_FLEET_MAX_RSS_GIB"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 {
			b.Fatalf("FLEETPULSE_FLEET_MAX_RSS_GIB=%q: want a positive number", v)
		}
		o.maxRSS = f
	}
	o.starve = os.Getenv("FLEETPULSE_FLEET_STARVE") == "1"
	if o.period%time.Second != 0 {
		b.Fatalf("FLEETPULSE_FLEET_HEARTBEAT_PERIOD=%s: the hub takes whole seconds", o.period)
	}
	if o.steady == 0 {
		o.steady = 2 * max(o.period, o.interval)
	}
	o.lost = min(o.lost, o.clusters)
	return o
}

func (o fleetOptions) grace() time.Duration { return time.Duration(o.gracePeriods) * o.period }

// fleetRun is what one iteration measured.
type fleetRun struct {
	registrationsPerSec, toAvailable, joinP99       float64
	hubCores, hubRSS, hubMaxRSS, perCluster, hubFDs float64
	hubGoroutines                                   float64
	cpCores                                         map[string]float64
	simCores                                        float64
	toUnknown, toUnknownStarved                     []time.Duration
	missed, falseUnknowns                           int
	// writesPerClusterMin is the apiserver's writes per cluster per minute
	// over the steady-state window.
	writesPerClusterMin float64
}

// BenchmarkFleetRegistration registers a simulated fleet (test/bench/fleetsim:
// lightweight agents speaking the real protocol, 34 inventory series each)
// with one `fleetpulse hub` process on a real control plane, and measures:
//
//   - registrations/s, from the first registration request to the last
//     certificate (every cluster registers with an auto-accepting token);
//   - the hub's CPU (cores) and resident memory over a steady-state window,
//     once every cluster is Available and its inventory queryable, with the
//     memory added per cluster over the hub's idle footprint, and the
//     control plane's CPU beside it;
//   - the time from a lost cluster's last heartbeat to its ManagedCluster's
//     Available condition turning Unknown, as a watch on the control plane
//     sees it, for FLEETPULSE_FLEET_LOST random clusters that stop at once:
//     p50, p99 and max, in seconds and in heartbeat periods; the *-over-grace
//     figures subtract the grace (grace periods × period) that the hub waits
//     on purpose, leaving the hub's own delay.
//
// A True→Unknown transition of a cluster that was not lost counts as a
// false Unknown and fails the run, as does a lost cluster that never goes
// Unknown. Knobs (environment): FLEETPULSE_FLEET_CLUSTERS (10000),
// FLEETPULSE_FLEET_HEARTBEAT_PERIOD (30s), FLEETPULSE_FLEET_GRACE_PERIODS (3),
// FLEETPULSE_FLEET_COLLECTION_INTERVAL (30s), FLEETPULSE_FLEET_STARVE (1: lose
// as many clusters again with the apiserver confined to one CPU beside a
// CPU-bound neighbour), FLEETPULSE_FLEET_HUB_BINARY (a prebuilt hub),
// FLEETPULSE_FLEET_REGISTER_CONCURRENCY (16), FLEETPULSE_FLEET_STEADY (two
// periods), FLEETPULSE_FLEET_LOST (100), FLEETPULSE_FLEET_MAX_RSS_GIB (16: the
// run stops when the hub grows past it). Each iteration starts a control
// plane and a hub of its own; run it with -benchtime 1x.
func BenchmarkFleetRegistration(b *testing.B) {
	o := fleetOptionsFromEnv(b)
	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	// FLEETPULSE_FLEET_HUB_BINARY runs a fleetpulse binary built before,
	// from another tree, say, to compare.
	bin := os.Getenv("FLEETPULSE_FLEET_HUB_BINARY")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "fleetpulse")
		cmd := exec.Command("go", "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build fleetpulse: %v\n%s", err, out)
		}
	}
	b.Logf("%d clusters, heartbeat period %s, grace %d periods, collection interval %s, %d series per cluster",
		o.clusters, o.period, o.gracePeriods, o.interval, fleetsim.SeriesPerCluster)
	var runs []fleetRun
	for b.Loop() {
		runs = append(runs, runFleet(b, o, bin))
	}
	reportFleet(b, o, runs)
}

func runFleet(b *testing.B, o fleetOptions, bin string) fleetRun {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var run fleetRun
	cp := testbed.StartClusters(b, "fleethub", 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	defer cp.Stop()

	ca := testbed.NewCA(b, "fleet-agents")
	serverCert, serverKey := ca.Server("hub")
	httpAddr, agentAddr, work := testbed.FreeAddr(b), testbed.FreeAddr(b), b.TempDir()
	hub, err := testbed.StartProcess("hub", bin, []string{"hub",
		"--http.listen-address=" + httpAddr, "--agents.listen-address=" + agentAddr,
		"--agents.tls-cert-file=" + serverCert, "--agents.tls-key-file=" + serverKey,
		"--agents.client-ca-file=" + ca.CertFile, "--agents.client-ca-key-file=" + ca.KeyFile,
		"--control-plane.kubeconfig=" + cp.KubeconfigPath, "--storage.tsdb.path=" + filepath.Join(work, "tsdb"),
		"--registration.heartbeat-period-seconds=" + strconv.Itoa(int(o.period.Seconds())),
		"--registration.grace-periods=" + strconv.Itoa(o.gracePeriods), "--web.enable-pprof",
	}, work)
	if err != nil {
		b.Fatal(err)
	}
	defer hub.Stop(30 * time.Second)
	defer func() {
		if b.Failed() {
			b.Logf("hub log (last lines):\n%s", fleetLogTail(filepath.Join(work, "hub.log"), 40))
		}
		if dir := os.Getenv("FLEETPULSE_FLEET_PROFILE_DIR"); dir != "" {
			if data, err := os.ReadFile(filepath.Join(work, "hub.log")); err == nil {
				_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("hub-%d.log", o.clusters)), data, 0o644)
			}
		}
		if sum := logSummary(filepath.Join(work, "hub.log")); sum != "" {
			b.Logf("hub warnings and errors:\n%s", sum)
		}
	}()
	waitHubReady(b, "http://"+httpAddr, hub.PID())
	idleRSS, _ := procStatus(hub.PID(), "VmRSS")
	idleFDs, maxFDs := openFDs(hub.PID()), openFileLimit(hub.PID())

	// The guard: past the memory limit, or close to its open-file limit,
	// the hub is stopped before it takes the machine down (or panics), and
	// the run fails with what each cluster cost. A hub that exits fails the
	// run at once.
	var over atomic.Value
	guardCtx, stopGuard := context.WithCancel(ctx)
	defer stopGuard()
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	var registered atomic.Int64
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-guardCtx.Done():
				return
			case <-t.C:
			}
			rss, err := procStatus(hub.PID(), "VmRSS")
			if err != nil {
				over.Store(fmt.Sprintf("the hub exited (%v); see its log", err))
				stopFleet()
				return
			}
			avail, fds := memAvailable(), openFDs(hub.PID())
			overRSS := rss > o.maxRSS*(1<<30) || (avail >= 0 && avail < 2<<30)
			overFDs := maxFDs > 0 && fds > maxFDs*95/100
			if !overRSS && !overFDs {
				continue
			}
			kinds := fdKinds(hub.PID())
			n := max(registered.Load(), 1)
			msg := fmt.Sprintf("hub RSS %.1f GiB (machine has %.1f GiB available), %d open files of its limit of %d, with %d clusters registered: "+
				"%.0f KiB and %.1f open files per cluster over the idle hub's %.0f MiB and %d (%v)",
				rss/(1<<30), avail/(1<<30), fds, maxFDs, n, (rss-idleRSS)/float64(n)/1024, float64(fds-idleFDs)/float64(n), idleRSS/(1<<20), idleFDs, kinds)
			over.Store(msg)
			stopFleet()
			hub.Stop(10 * time.Second)
			return
		}
	}()
	checkGuard := func() {
		if msg, ok := over.Load().(string); ok {
			b.Fatalf("stopped: %s", msg)
		}
	}

	restCfg := rest.CopyConfig(cp.RESTConfig)
	restCfg.QPS, restCfg.Burst = 100, 200
	kube, err := client.New(restCfg, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, registration.DefaultConfig().Namespace).Create(ctx,
		registration.TokenOptions{TTL: 24 * time.Hour, AutoAccept: true, Description: "fleet benchmark"})
	if err != nil {
		b.Fatal(err)
	}
	avail := watchAvailability(b, ctx, cp.RESTConfig)

	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := fleetsim.DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters = "https://"+agentAddr, pool, token, o.clusters
	cfg.HeartbeatPeriod, cfg.CollectionInterval, cfg.RegisterConcurrency = o.period, o.interval, o.registerConcurrency
	cfg.Logger = slog.New(slog.NewTextHandler(fleetLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fleet, err := fleetsim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer fleet.Close()

	// Registration.
	regDone := make(chan struct{})
	go func() { // count registrations for the guard
		defer close(regDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-fleetCtx.Done():
				return
			case <-t.C:
				registered.Store(fleet.Registered())
			}
		}
	}()
	pids := map[string]int{"hub": hub.PID(), "simulator": os.Getpid()}
	for name, pid := range cp.PIDs() {
		pids[name] = pid
	}
	joinMeter := startCPU(pids)
	res, err := fleet.Register(fleetCtx)
	checkGuard()
	if err != nil {
		b.Fatal(err)
	}
	registered.Store(int64(res.Registered))
	run.registrationsPerSec = res.Rate()
	b.Logf("registered %d clusters in %s: %.0f/s (%d requests); hub RSS %.0f MiB (%.0f idle), open files limit %d",
		res.Registered, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate(), res.Requests, rssMiB(hub.PID()), idleRSS/(1<<20), maxFDs)

	// Steady state: every cluster heartbeats and writes.
	runDone := make(chan struct{})
	go func() { defer close(runDone); fleet.Run(fleetCtx) }()
	defer func() { stopFleet(); <-runDone; <-regDone }()
	// The join is bound by the control plane, which shares the machine:
	// the deadline leaves room for a busy one.
	deadline := time.Now().Add(3*o.period + 5*time.Minute + time.Duration(o.clusters)*40*time.Millisecond)
	if !avail.waitFor(fleetCtx, deadline, func(a *availability) bool { return a.available == o.clusters }) {
		checkGuard()
		b.Fatalf("%d of %d clusters Available by the deadline", avail.availableNow(), o.clusters)
	}
	run.toAvailable = time.Since(res.Start).Seconds()
	joinCores := joinMeter.cores()
	var join []time.Duration
	avail.mu.Lock()
	for name, first := range fleet.FirstHeartbeats() {
		if at, ok := avail.availableAt[name]; ok {
			join = append(join, at.Sub(first))
		}
	}
	avail.mu.Unlock()
	slices.Sort(join)
	run.joinP99 = fleetsim.Percentile(join, 99).Seconds()
	waitInventory(b, fleetCtx, "http://"+httpAddr, o, checkGuard)
	b.Logf("all %d clusters Available %.1fs after the first registration request (first heartbeat to Available: p50 %s, p99 %s, max %s; CPU meanwhile: %s), their inventory queryable after %.1fs; hub RSS %.0f MiB",
		o.clusters, run.toAvailable, fleetsim.Percentile(join, 50).Round(time.Millisecond), fleetsim.Percentile(join, 99).Round(time.Millisecond),
		fleetsim.Percentile(join, 100).Round(time.Millisecond), fmtCores(joinCores), time.Since(res.Start).Seconds(), rssMiB(hub.PID()))

	fleet.ResetLatencies()
	unknownBefore := avail.unknownCount()
	writesBefore, err := apiserverWrites(ctx, cp.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	steadyStart := time.Now()
	meter := startCPU(pids)
	profileDone := make(chan struct{})
	if dir := os.Getenv("FLEETPULSE_FLEET_PROFILE_DIR"); dir != "" {
		// A CPU profile of the hub over the window (FLEETPULSE_FLEET_PROFILE_DIR).
		go func() {
			defer close(profileDone)
			saveProfile(b, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", httpAddr, int(o.steady.Seconds())-1),
				filepath.Join(dir, fmt.Sprintf("hub-cpu-%d.pb.gz", o.clusters)))
		}()
	} else {
		close(profileDone)
	}
	defer func() { <-profileDone }()
	var rssSum, rssMax float64
	samples := 0
	for end := time.Now().Add(o.steady); time.Now().Before(end); {
		t := time.NewTimer(time.Second)
		select {
		case <-fleetCtx.Done():
			t.Stop()
			checkGuard()
			b.Fatal("the fleet stopped during the steady-state window")
		case <-t.C:
		}
		rss, err := procStatus(hub.PID(), "VmRSS")
		if err != nil {
			b.Fatalf("hub: %v", err)
		}
		rssSum += rss
		rssMax = max(rssMax, rss)
		samples++
	}
	cores := meter.cores()
	writesAfter, err := apiserverWrites(ctx, cp.RESTConfig)
	if err != nil {
		b.Fatal(err)
	}
	writes, total := writesBetween(writesBefore, writesAfter)
	perClusterMin := float64(o.clusters) * time.Since(steadyStart).Minutes()
	run.writesPerClusterMin = total / perClusterMin
	b.Logf("apiserver writes per cluster per minute over the window: %.3f (%s)", run.writesPerClusterMin, fmtWrites(writes, perClusterMin))
	run.hubCores, run.simCores = cores["hub"], cores["simulator"]
	delete(cores, "hub")
	delete(cores, "simulator")
	run.cpCores = cores
	run.hubRSS, run.hubMaxRSS = rssSum/float64(samples)/(1<<20), rssMax/(1<<20)
	run.perCluster = (rssSum/float64(samples) - idleRSS) / float64(o.clusters) / 1024
	run.hubFDs = float64(openFDs(hub.PID()))
	kinds := fdKinds(hub.PID())
	if dir := os.Getenv("FLEETPULSE_FLEET_PROFILE_DIR"); dir != "" {
		saveProfile(b, "http://"+httpAddr+"/debug/pprof/heap", filepath.Join(dir, fmt.Sprintf("hub-heap-%d.pb.gz", o.clusters)))
		saveProfile(b, "http://"+httpAddr+"/debug/pprof/goroutine", filepath.Join(dir, fmt.Sprintf("hub-goroutine-%d.pb.gz", o.clusters)))
	}
	hm := hubMetrics(b, "http://"+httpAddr)
	run.hubGoroutines = hm["go_goroutines"]
	st := fleet.Stats()
	b.Logf("steady state over %s: hub %.2f cores, RSS mean %.0f MiB (max %.0f), %.1f KiB per cluster over the idle hub, heap in use %.0f MiB, %d goroutines, %.0f open files %v; control plane %s; simulator %.2f cores",
		o.steady, run.hubCores, run.hubRSS, run.hubMaxRSS, run.perCluster, hm["go_memstats_heap_inuse_bytes"]/(1<<20), int(run.hubGoroutines), run.hubFDs, kinds, fmtCores(run.cpCores), run.simCores)
	b.Logf("simulator: %d heartbeats (%d failed), %d writes (%d failed), %d samples; heartbeat answer %s; write answer %s; call lateness %s",
		st.Heartbeats, st.HeartbeatErrors, st.Writes, st.WriteErrors, st.Samples, st.HeartbeatLatency, st.WriteLatency, st.Lateness)
	if falses := avail.unknownCount() - unknownBefore; falses > 0 {
		b.Logf("%d clusters went Unknown while heartbeating during the window", falses)
	}

	// Loss: clusters stop at once; each must go Unknown. With
	// FLEETPULSE_FLEET_STARVE=1 more clusters stop afterwards, with the
	// apiserver starved.
	lostSet := map[string]bool{}
	run.toUnknown = loseClusters(b, o, fleet, avail, fleetCtx, lostSet, &run.missed, "")
	checkGuard()
	if o.starve {
		restore := starveAPIServer(b, cp.PIDs()["kube-apiserver"])
		run.toUnknownStarved = loseClusters(b, o, fleet, avail, fleetCtx, lostSet, &run.missed, " with the apiserver starved")
		restore()
		checkGuard()
	}
	avail.mu.Lock()
	for name, ts := range avail.unknownAt {
		if !lostSet[name] {
			run.falseUnknowns += len(ts)
		} else if len(ts) > 1 {
			run.falseUnknowns += len(ts) - 1
		}
	}
	avail.mu.Unlock()
	if run.falseUnknowns > 0 {
		b.Errorf("%d True→Unknown transitions of clusters that kept heartbeating", run.falseUnknowns)
	}
	return run
}

// loseClusters stops o.lost clusters at once, adds them to lostSet, and
// returns each one's time from its last heartbeat to Unknown, sorted.
func loseClusters(b *testing.B, o fleetOptions, fleet *fleetsim.Fleet, avail *availability, ctx context.Context,
	lostSet map[string]bool, missed *int, how string) []time.Duration {
	lost := fleet.Lose(o.lost)
	lostAt := time.Now()
	byName := map[string]time.Time{}
	for _, l := range lost {
		if l.LastHeartbeat.IsZero() {
			b.Fatalf("lost cluster %s never had a heartbeat acknowledged", l.Name)
		}
		byName[l.Name] = l.LastHeartbeat
		lostSet[l.Name] = true
	}
	allUnknown := func(a *availability) bool {
		for name, last := range byName {
			if _, ok := a.firstUnknownAfter(name, last); !ok {
				return false
			}
		}
		return true
	}
	avail.waitFor(ctx, lostAt.Add(o.grace()+5*o.period+time.Minute), allUnknown)
	var toUnknown []time.Duration
	n := 0
	avail.mu.Lock()
	for name, last := range byName {
		at, ok := avail.firstUnknownAfter(name, last)
		if !ok {
			n++
			continue
		}
		toUnknown = append(toUnknown, at.Sub(last))
	}
	avail.mu.Unlock()
	slices.Sort(toUnknown)
	if len(toUnknown) > 0 {
		b.Logf("time to Unknown of %d lost clusters%s: p50 %s, p99 %s, max %s (grace %s)", len(toUnknown), how,
			fleetsim.Percentile(toUnknown, 50).Round(time.Millisecond), fleetsim.Percentile(toUnknown, 99).Round(time.Millisecond),
			toUnknown[len(toUnknown)-1].Round(time.Millisecond), o.grace())
	}
	if n > 0 {
		b.Errorf("%d of %d lost clusters%s not Unknown %s after they were lost", n, len(lost), how, o.grace()+5*o.period+time.Minute)
	}
	*missed += n
	return toUnknown
}

func reportFleet(b *testing.B, o fleetOptions, runs []fleetRun) {
	if len(runs) == 0 {
		return
	}
	n := float64(len(runs))
	mean := func(f func(r fleetRun) float64) float64 {
		s := 0.0
		for _, r := range runs {
			s += f(r)
		}
		return s / n
	}
	b.ReportMetric(float64(o.clusters), "clusters")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.registrationsPerSec }), "registrations/s")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.toAvailable }), "s-to-all-available")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.joinP99 }), "heartbeat-to-available-p99-s")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.hubCores }), "hub-cores")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.hubRSS }), "hub-rss-MiB")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.hubMaxRSS }), "hub-maxrss-MiB")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.perCluster }), "hub-KiB/cluster")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.hubGoroutines / float64(o.clusters) }), "hub-goroutines/cluster")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.hubFDs }), "hub-open-files")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.cpCores["kube-apiserver"] }), "apiserver-cores")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.cpCores["etcd"] }), "etcd-cores")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.simCores }), "simulator-cores")
	b.ReportMetric(mean(func(r fleetRun) float64 { return r.writesPerClusterMin }), "apiserver-writes/cluster/min")
	reportUnknown(b, o, runs, "", func(r fleetRun) []time.Duration { return r.toUnknown })
	if o.starve {
		reportUnknown(b, o, runs, "starved-", func(r fleetRun) []time.Duration { return r.toUnknownStarved })
	}
	b.ReportMetric(mean(func(r fleetRun) float64 { return float64(r.missed) }), "lost-not-unknown")
	b.ReportMetric(mean(func(r fleetRun) float64 { return float64(r.falseUnknowns) }), "false-unknowns")
}

// reportUnknown reports the times to Unknown of every run's lost clusters
// together, in seconds and in periods over the grace.
func reportUnknown(b *testing.B, o fleetOptions, runs []fleetRun, prefix string, of func(fleetRun) []time.Duration) {
	var all []time.Duration
	for _, r := range runs {
		all = append(all, of(r)...)
	}
	slices.Sort(all)
	if len(all) == 0 {
		return
	}
	p := o.period.Seconds()
	g := o.grace().Seconds()
	p50, p99, mx := fleetsim.Percentile(all, 50).Seconds(), fleetsim.Percentile(all, 99).Seconds(), all[len(all)-1].Seconds()
	b.ReportMetric(p50, prefix+"unknown-p50-s")
	b.ReportMetric(p99, prefix+"unknown-p99-s")
	b.ReportMetric(mx, prefix+"unknown-max-s")
	b.ReportMetric(p99/p, prefix+"unknown-p99-periods")
	b.ReportMetric((p50-g)/p, prefix+"unknown-p50-over-grace-periods")
	b.ReportMetric((p99-g)/p, prefix+"unknown-p99-over-grace-periods")
	b.ReportMetric((mx-g)/p, prefix+"unknown-max-over-grace-periods")
}

// waitHubReady polls /-/ready until the hub answers 200.
func waitHubReady(b *testing.B, base string, pid int) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if _, perr := os.Stat(fmt.Sprintf("/proc/%d", pid)); perr != nil {
			b.Fatalf("hub exited before it was ready")
		}
		if time.Now().After(deadline) {
			b.Fatalf("hub not ready within 2m: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitInventory polls the hub until every cluster's inventory is queryable:
// every tenant exists and has taken writes.
func waitInventory(b *testing.B, ctx context.Context, base string, o fleetOptions, checkGuard func()) {
	b.Helper()
	c, err := promapi.NewClient(promapi.Config{Address: base})
	if err != nil {
		b.Fatal(err)
	}
	api := promv1.NewAPI(c)
	deadline := time.Now().Add(3*o.interval + time.Minute)
	var got float64
	for {
		v, _, err := api.Query(ctx, `count(count by (cluster) (k8s_cluster_info))`, time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 {
			got = float64(vec[0].Value)
			if int(got) == o.clusters {
				return
			}
		}
		checkGuard()
		if time.Now().After(deadline) {
			b.Fatalf("inventory of %v of %d clusters queryable by the deadline (last error %v)", got, o.clusters, err)
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			checkGuard()
			b.Fatal(ctx.Err())
		case <-t.C:
		}
	}
}

// hubMetrics reads the hub's own untyped and gauge metrics without labels.
func hubMetrics(b *testing.B, base string) map[string]float64 {
	b.Helper()
	out := map[string]float64{}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Logf("hub metrics: %v", err)
		return out
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		b.Logf("hub metrics: %v", err)
		return out
	}
	for name, mf := range families {
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) == 0 && m.GetGauge() != nil {
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func rssMiB(pid int) float64 {
	rss, _ := procStatus(pid, "VmRSS")
	return rss / (1 << 20)
}

func fmtCores(m map[string]float64) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s %.2f", n, m[n])
	}
	return strings.Join(parts, ", ") + " cores"
}

func fleetLogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// saveProfile stores a pprof profile of the hub.
func saveProfile(b *testing.B, url, path string) {
	resp, err := http.Get(url)
	if err != nil {
		b.Logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(path), 0o755)
	}
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		b.Logf("profile %s: %v", url, err)
	}
}

// logSummary counts a logfmt log's warnings and errors by message.
func logSummary(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	counts := map[string]int{}
	example := map[string]string{}
	for line := range strings.Lines(string(data)) {
		if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
			continue
		}
		msg := line
		if i := strings.Index(line, "msg="); i >= 0 {
			msg = line[i:]
			if j := strings.Index(msg, `" `); strings.HasPrefix(msg, `msg="`) && j > 0 {
				msg = msg[:j+1]
			} else if j := strings.IndexByte(msg, ' '); j > 0 {
				msg = msg[:j]
			}
		}
		counts[msg]++
		if example[msg] == "" {
			example[msg] = msg
			if i := strings.Index(line, " err="); i >= 0 {
				example[msg] += line[i:]
			}
		}
	}
	var out []string
	for msg, n := range counts {
		out = append(out, fmt.Sprintf("%6d × %s", n, fleetTruncate(strings.TrimSpace(example[msg]), 400)))
	}
	slices.Sort(out)
	return strings.Join(out, "\n")
}

func fleetTruncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// fleetLog sends slog output to the benchmark's log.
type fleetLog struct{ b *testing.B }

func (w fleetLog) Write(p []byte) (int, error) {
	w.b.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
