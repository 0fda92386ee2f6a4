package bench

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/registration"
	"github.com/fleetpulse/fleetpulse/test/bench/fleetsim"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// scaleOutOptions are BenchmarkScaleOut's knobs, from the environment.
type scaleOutOptions struct {
	clusters    int           // FLEETPULSE_SCALEOUT_CLUSTERS
	replicas    int           // FLEETPULSE_SCALEOUT_REPLICAS
	steady      time.Duration // FLEETPULSE_SCALEOUT_STEADY
	queryRounds int           // FLEETPULSE_SCALEOUT_QUERY_ROUNDS
	killLeader  bool          // FLEETPULSE_SCALEOUT_KILL=leader
	period      time.Duration // the agents' heartbeat period and collection interval
	grace       int           // the hub's --registration.grace-periods
}

func scaleOutOptionsFromEnv(b *testing.B) scaleOutOptions {
	b.Helper()
	o := scaleOutOptions{clusters: 9000, replicas: 3, steady: time.Minute, queryRounds: 5, period: 30 * time.Second, grace: 3}
	for env, p := range map[string]*int{"FLEETPULSE_SCALEOUT_CLUSTERS": &o.clusters, "FLEETPULSE_SCALEOUT_REPLICAS": &o.replicas,
		"FLEETPULSE_SCALEOUT_QUERY_ROUNDS": &o.queryRounds} {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive integer", env, v)
			}
			*p = n
		}
	}
	if v := os.Getenv("FLEETPULSE_SCALEOUT_STEADY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("FLEETPULSE_SCALEOUT_STEADY=%q: want a positive duration", v)
		}
		o.steady = d
	}
	switch v := os.Getenv("FLEETPULSE_SCALEOUT_KILL"); v {
	case "", "follower":
	case "leader":
		o.killLeader = true
	default:
		b.Fatalf("FLEETPULSE_SCALEOUT_KILL=%q: want follower or leader", v)
	}
	if o.replicas < 2 {
		b.Fatalf("FLEETPULSE_SCALEOUT_REPLICAS=%d: a ring needs at least 2", o.replicas)
	}
	return o
}

// scaleOutRun is what one iteration measured: one hub with every cluster,
// then the replicas with the same number spread over them.
type scaleOutRun struct {
	single, ring      phaseFigures
	thanos            queryLatency
	takeover          takeoverFigures
	singleQ, replicaQ queryLatency
}

// BenchmarkScaleOut runs the same simulated fleet (test/bench/fleetsim:
// FLEETPULSE_SCALEOUT_CLUSTERS clusters, 34 inventory series each, heartbeat
// and remote write every 30 s) first against one `fleetpulse hub` process,
// then against FLEETPULSE_SCALEOUT_REPLICAS (3) hub processes in a ring
// (--ring.enabled, memberlist on loopback, StoreAPI on --grpc.listen-address,
// --replica.name, controllers leader-elected), each phase on a test-bed
// control plane of its own. The agents reach the replicas through a TCP
// balancer that stands in for the agents' Service, follow the replicas'
// 307s to their cluster's owner and call it directly from then on. It
// reports:
//
//   - each hub process's CPU (utime+stime, in cores) and mean RSS over a
//     steady-state window (FLEETPULSE_SCALEOUT_STEADY, 1 min) once every
//     cluster is Available and its inventory queryable: the one hub's, and
//     the replicas' mean, max and sum;
//   - the Fleet-overview dashboard's queries (dashboards/fleet-overview.json,
//     a 1 h view), p50 and p99 of each query alone and of the whole
//     dashboard sent at once, through the one hub's /api/v1, through a stock
//     `thanos query` over the replicas' StoreAPIs, and through the replicas'
//     own /api/v1 behind a balancer (each reads its peers' StoreAPIs);
//   - takeover: a replica that does not lead the controllers (or, with
//     FLEETPULSE_SCALEOUT_KILL=leader, the one that does) is killed with
//     SIGKILL, and for each cluster it owned, the time from the kill until a
//     heartbeat and a write of the cluster are acknowledged by another
//     replica; the clusters that went Unknown on the control plane meanwhile
//     are counted, and the time until all of them are Available again.
//
// Each iteration waits for two fleets to join: run it with -benchtime 1x.
// It is skipped unless FLEETPULSE_SCALEOUT_CLUSTERS is set (or
// FLEETPULSE_SCALEOUT=1, for the default of 9,000), so that `make bench`'s
// default pattern does not run it. Other knobs: FLEETPULSE_SCALEOUT_REPLICAS
// (3), FLEETPULSE_SCALEOUT_STEADY (1m), FLEETPULSE_SCALEOUT_QUERY_ROUNDS (5),
// FLEETPULSE_SCALEOUT_KILL (follower or leader),
// FLEETPULSE_SCALEOUT_HUB_BINARY (a prebuilt hub). Its progress goes to
// standard error as it happens, one line a step.
func BenchmarkScaleOut(b *testing.B) {
	if os.Getenv("FLEETPULSE_SCALEOUT_CLUSTERS") == "" && os.Getenv("FLEETPULSE_SCALEOUT") != "1" {
		b.Skip("set FLEETPULSE_SCALEOUT_CLUSTERS (9000 for the documented figures) or FLEETPULSE_SCALEOUT=1 to run the scale-out benchmark")
	}
	o := scaleOutOptionsFromEnv(b)
	ensureFileLimit(b, uint64(2*o.clusters+2_000))
	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	bin := os.Getenv("FLEETPULSE_SCALEOUT_HUB_BINARY")
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "fleetpulse")
		cmd := exec.Command("go", "build", "-tags", "slicelabels", "-o", bin, "./cmd/fleetpulse")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build fleetpulse: %v\n%s", err, out)
		}
	}
	thanos := testbed.ThanosBinary(b)
	progressf("%d clusters, one hub against %d replicas; load average %s", o.clusters, o.replicas, loadAverage())
	var runs []scaleOutRun
	for b.Loop() {
		var r scaleOutRun
		r.single, r.singleQ = runSingleHub(b, o, bin)
		r.ring, r.thanos, r.replicaQ, r.takeover = runReplicas(b, o, bin, thanos)
		runs = append(runs, r)
	}
	progressf("load average at the end %s", loadAverage())
	reportScaleOut(b, o, runs)
}

// phaseFigures are one phase's steady-state figures, by hub process.
type phaseFigures struct {
	cores, rssMiB []float64
	cp            map[string]float64
	simCores      float64
}

// hubProc is one hub process of a phase.
type hubProc struct {
	name              string
	proc              *testbed.Process
	http, agent, grpc string
	memberlistPort    int
	work              string
}

// phase is a control plane, its hubs and a fleet that joined them.
type phase struct {
	cp    *testbed.Cluster
	hubs  []*hubProc
	fleet *fleetsim.Fleet
	avail *availability
	stop  func()
}

// stopHubs stops the phase's hub processes, before its control plane.
func (p *phase) stopHubs() {
	for _, h := range p.hubs {
		h.proc.Stop(30 * time.Second)
	}
}

func (p *phase) pids() map[string]int {
	pids := map[string]int{"simulator": os.Getpid()}
	for _, h := range p.hubs {
		pids[h.name] = h.proc.PID()
	}
	for name, pid := range p.cp.PIDs() {
		pids[name] = pid
	}
	return pids
}

// startHubs starts n hub processes on cp: one plain hub, or n replicas in
// a ring joined through the first one's memberlist port.
func startHubs(b *testing.B, bin string, cp *testbed.Cluster, ca *testbed.CA, n int, o scaleOutOptions) []*hubProc {
	b.Helper()
	serverCert, serverKey := ca.Server("hub")
	var hubs []*hubProc
	for i := range n {
		h := &hubProc{name: "hub", http: testbed.FreeAddr(b), agent: testbed.FreeAddr(b), work: b.TempDir()}
		args := []string{"hub",
			"--http.listen-address=" + h.http, "--agents.listen-address=" + h.agent,
			"--agents.tls-cert-file=" + serverCert, "--agents.tls-key-file=" + serverKey,
			"--agents.client-ca-file=" + ca.CertFile, "--agents.client-ca-key-file=" + ca.KeyFile,
			"--control-plane.kubeconfig=" + cp.KubeconfigPath, "--storage.tsdb.path=" + filepath.Join(h.work, "tsdb"),
			"--registration.heartbeat-period-seconds=" + strconv.Itoa(int(o.period.Seconds())),
			"--registration.grace-periods=" + strconv.Itoa(o.grace),
		}
		if n > 1 {
			h.name = fmt.Sprintf("hub-%d", i)
			h.grpc = testbed.FreeAddr(b)
			h.memberlistPort = freePort(b)
			args = append(args, "--ring.enabled", "--ring.instance-id="+h.name, "--ring.instance-addr=127.0.0.1",
				"--memberlist.bind-addr=127.0.0.1", "--memberlist.bind-port="+strconv.Itoa(h.memberlistPort),
				"--grpc.listen-address="+h.grpc, "--replica.name="+h.name)
			if i > 0 {
				args = append(args, "--memberlist.join=127.0.0.1:"+strconv.Itoa(hubs[0].memberlistPort))
			}
		}
		proc, err := testbed.StartProcess(h.name, bin, args, h.work)
		if err != nil {
			b.Fatal(err)
		}
		h.proc = proc
		b.Cleanup(func() {
			proc.Stop(30 * time.Second)
			if b.Failed() {
				progressf("%s log (last lines):\n%s", h.name, fleetLogTail(filepath.Join(h.work, h.name+".log"), 30))
			}
			if sum := logSummary(filepath.Join(h.work, h.name+".log")); sum != "" {
				progressf("%s warnings and errors:\n%s", h.name, sum)
			}
		})
		waitHubReady(b, "http://"+h.http, proc.PID())
		hubs = append(hubs, h)
	}
	return hubs
}

// startPhase starts a control plane, n hubs and a fleet of o.clusters that
// joins them (through a balancer when n > 1), and returns once every
// cluster is Available and its inventory queryable through the first hub.
func startPhase(b *testing.B, ctx context.Context, o scaleOutOptions, bin, prefix string, n int) *phase {
	b.Helper()
	p := &phase{}
	p.cp = testbed.StartClusters(b, prefix, 1, testbed.ClusterOptions{ControlPlaneOnly: true})[0]
	ca := testbed.NewCA(b, prefix+"-agents")
	p.hubs = startHubs(b, bin, p.cp, ca, n, o)
	hubURL := "https://" + p.hubs[0].agent
	if n > 1 {
		var backends []string
		for _, h := range p.hubs {
			backends = append(backends, h.agent)
		}
		lb, err := newTCPBalancer(backends)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(lb.Close)
		hubURL = "https://" + lb.Addr()
		waitRing(b, ctx, p.hubs, n)
	}

	restCfg := rest.CopyConfig(p.cp.RESTConfig)
	restCfg.QPS, restCfg.Burst = 100, 200
	kube, err := client.New(restCfg, client.Options{Scheme: controlplane.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	token, _, err := registration.NewTokens(kube, registration.DefaultConfig().Namespace).Create(ctx,
		registration.TokenOptions{TTL: 24 * time.Hour, AutoAccept: true, Description: "scale-out benchmark"})
	if err != nil {
		b.Fatal(err)
	}
	p.avail = watchAvailability(b, ctx, p.cp.RESTConfig)
	caPEM, err := os.ReadFile(ca.CertFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := fleetsim.DefaultConfig()
	cfg.Hub, cfg.RootCAs, cfg.Token, cfg.Clusters, cfg.Prefix = hubURL, pool, token, o.clusters, prefix
	cfg.HeartbeatPeriod, cfg.CollectionInterval = o.period, o.period
	cfg.Logger = slog.New(slog.NewTextHandler(fleetLog{b}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if p.fleet, err = fleetsim.New(cfg); err != nil {
		b.Fatal(err)
	}
	res, err := p.fleet.Register(ctx)
	if err != nil {
		b.Fatal(err)
	}
	progressf("%s: registered %d clusters in %s (%.0f/s)", prefix, res.Registered, res.End.Sub(res.Start).Round(time.Millisecond), res.Rate())
	fleetCtx, stopFleet := context.WithCancel(ctx)
	runDone := make(chan struct{})
	go func() { defer close(runDone); p.fleet.Run(fleetCtx) }()
	p.stop = func() { stopFleet(); <-runDone; p.fleet.Close() }
	b.Cleanup(p.stop)

	deadline := time.Now().Add(3*o.period + 5*time.Minute + time.Duration(o.clusters)*40*time.Millisecond)
	if !p.avail.waitFor(ctx, deadline, func(a *availability) bool { return a.available == o.clusters }) {
		b.Fatalf("%s: %d of %d clusters Available by the deadline", prefix, p.avail.availableNow(), o.clusters)
	}
	waitInventory(b, ctx, "http://"+p.hubs[0].http, fleetOptions{clusters: o.clusters, interval: o.period}, func() {})
	progressf("%s: all %d clusters Available and their inventory queryable %.0fs after the first registration; load average %s",
		prefix, o.clusters, time.Since(res.Start).Seconds(), loadAverage())
	return p
}

// steady measures the phase's processes over o.steady.
func (p *phase) steady(b *testing.B, ctx context.Context, o scaleOutOptions) phaseFigures {
	b.Helper()
	meter := startCPU(p.pids())
	rssSum := make([]float64, len(p.hubs))
	samples := 0
	for end := time.Now().Add(o.steady); time.Now().Before(end); {
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
		for i, h := range p.hubs {
			rss, err := procStatus(h.proc.PID(), "VmRSS")
			if err != nil {
				b.Fatalf("%s: %v", h.name, err)
			}
			rssSum[i] += rss
		}
		samples++
	}
	cores := meter.cores()
	var f phaseFigures
	for i, h := range p.hubs {
		f.cores = append(f.cores, cores[h.name])
		f.rssMiB = append(f.rssMiB, rssSum[i]/float64(samples)/(1<<20))
		delete(cores, h.name)
	}
	f.simCores = cores["simulator"]
	delete(cores, "simulator")
	f.cp = cores
	st := p.fleet.Stats()
	progressf("steady state over %s: hubs %v cores, RSS %v MiB; control plane %s; simulator %.2f cores; %d heartbeats (%d failed), %d writes (%d failed); heartbeat answer %s; write answer %s",
		o.steady, fmtFloats(f.cores, 2), fmtFloats(f.rssMiB, 0), fmtCores(f.cp), f.simCores, st.Heartbeats, st.HeartbeatErrors, st.Writes, st.WriteErrors,
		st.HeartbeatLatency, st.WriteLatency)
	return f
}

func runSingleHub(b *testing.B, o scaleOutOptions, bin string) (phaseFigures, queryLatency) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startPhase(b, ctx, o, bin, "one", 1)
	defer p.cp.Stop()
	defer p.stopHubs()
	defer p.stop()
	fig := p.steady(b, ctx, o)
	e := newPromEndpoint("the one hub's /api/v1", "http://"+p.hubs[0].http)
	queries, err := overviewQueries(ctx, e, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	q := measureOverview(ctx, e, queries, o.queryRounds)
	logLatency(b, e.name, q)
	return fig, q
}

func runReplicas(b *testing.B, o scaleOutOptions, bin, thanos string) (phaseFigures, queryLatency, queryLatency, takeoverFigures) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := startPhase(b, ctx, o, bin, "ring", o.replicas)
	defer p.cp.Stop()
	defer p.stopHubs()
	defer p.stop()
	fig := p.steady(b, ctx, o)

	// A stock thanos query over the replicas' StoreAPIs.
	tq := startThanosQuery(b, ctx, thanos, p.hubs)
	waitClusters(b, ctx, tq, o.clusters)
	queries, err := overviewQueries(ctx, tq, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	thq := measureOverview(ctx, tq, queries, o.queryRounds)
	logLatency(b, tq.name, thq)
	// The replicas' own /api/v1 behind a balancer, as Grafana reads them
	// through the hub's Service: each query is answered by one replica
	// from its own TSDB and its peers' StoreAPIs.
	var httpAddrs []string
	for _, h := range p.hubs {
		httpAddrs = append(httpAddrs, h.http)
	}
	lb, err := newTCPBalancer(httpAddrs)
	if err != nil {
		b.Fatal(err)
	}
	defer lb.Close()
	re := newPromEndpoint("the replicas' /api/v1 (balanced)", "http://"+lb.Addr())
	rq := measureOverview(ctx, re, queries, o.queryRounds)
	logLatency(b, re.name, rq)

	return fig, thq, rq, takeOver(b, ctx, o, p)
}

// startThanosQuery runs `thanos query` over the hubs' StoreAPIs,
// deduplicating by the replica label.
func startThanosQuery(b *testing.B, ctx context.Context, thanos string, hubs []*hubProc) promEndpoint {
	b.Helper()
	httpAddr := testbed.FreeAddr(b)
	args := []string{"query", "--http-address=" + httpAddr, "--grpc-address=" + testbed.FreeAddr(b),
		"--query.replica-label=" + metricstore.DefaultReplicaLabel, "--deduplication.func=chain", "--log.level=warn"}
	for _, h := range hubs {
		args = append(args, "--endpoint="+h.grpc)
	}
	proc, err := testbed.StartProcess("thanos-query", thanos, args, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proc.Stop(10 * time.Second) })
	return newPromEndpoint("thanos query", "http://"+httpAddr)
}

// waitClusters polls e until it answers every cluster's inventory.
func waitClusters(b *testing.B, ctx context.Context, e promEndpoint, clusters int) {
	b.Helper()
	q := panelQuery{name: "clusters", expr: `count by (cluster) (k8s_cluster_info)`, instant: true}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		n, err := e.query(ctx, q, time.Now())
		if err == nil && n == clusters {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s answers %d of %d clusters after 2m (last error %v)", e.name, n, clusters, err)
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

func logLatency(b *testing.B, name string, q queryLatency) {
	progressf("Fleet overview through %s: %d queries (%d answer series): alone p50 %.1f ms, p99 %.1f ms; the dashboard at once p50 %.1f ms, p99 %.1f ms; %d failed (%v)",
		name, q.queries, q.answered, ms(fleetsim.Percentile(q.single, 50)), ms(fleetsim.Percentile(q.single, 99)),
		ms(fleetsim.Percentile(q.dashboard, 50)), ms(fleetsim.Percentile(q.dashboard, 99)), q.failed, q.firstErr)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// loadAverage is the machine's 1, 5 and 15 min load averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return f[0] + " " + f[1] + " " + f[2]
}

func fmtFloats(v []float64, prec int) string {
	out := "["
	for i, x := range v {
		if i > 0 {
			out += " "
		}
		out += strconv.FormatFloat(x, 'f', prec, 64)
	}
	return out + "]"
}

func reportScaleOut(b *testing.B, o scaleOutOptions, runs []scaleOutRun) {
	if len(runs) == 0 {
		return
	}
	n := float64(len(runs))
	mean := func(f func(r scaleOutRun) float64) float64 {
		s := 0.0
		for _, r := range runs {
			s += f(r)
		}
		return s / n
	}
	sum := func(v []float64) float64 {
		s := 0.0
		for _, x := range v {
			s += x
		}
		return s
	}
	b.ReportMetric(float64(o.clusters), "clusters")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return r.single.cores[0] }), "one-hub-cores")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return r.single.rssMiB[0] }), "one-hub-rss-MiB")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return sum(r.ring.cores) / float64(len(r.ring.cores)) }), "replica-cores-mean")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return slices.Max(r.ring.cores) }), "replica-cores-max")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return sum(r.ring.cores) }), "replicas-cores-sum")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return sum(r.ring.rssMiB) / float64(len(r.ring.rssMiB)) }), "replica-rss-MiB-mean")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return slices.Max(r.ring.rssMiB) }), "replica-rss-MiB-max")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return r.single.cp["kube-apiserver"] }), "one-hub-apiserver-cores")
	b.ReportMetric(mean(func(r scaleOutRun) float64 { return r.ring.cp["kube-apiserver"] }), "replicas-apiserver-cores")
	for _, q := range []struct {
		prefix string
		of     func(scaleOutRun) queryLatency
	}{{"one-hub", func(r scaleOutRun) queryLatency { return r.singleQ }},
		{"thanos-query", func(r scaleOutRun) queryLatency { return r.thanos }},
		{"replica", func(r scaleOutRun) queryLatency { return r.replicaQ }}} {
		var single, dash []time.Duration
		failed := 0
		for _, r := range runs {
			single, dash = append(single, q.of(r).single...), append(dash, q.of(r).dashboard...)
			failed += q.of(r).failed
		}
		b.ReportMetric(float64(failed)/n, q.prefix+"-query-failures")
		slices.Sort(single)
		slices.Sort(dash)
		b.ReportMetric(ms(fleetsim.Percentile(single, 50)), q.prefix+"-query-p50-ms")
		b.ReportMetric(ms(fleetsim.Percentile(single, 99)), q.prefix+"-query-p99-ms")
		b.ReportMetric(ms(fleetsim.Percentile(dash, 50)), q.prefix+"-dashboard-p50-ms")
		b.ReportMetric(ms(fleetsim.Percentile(dash, 99)), q.prefix+"-dashboard-p99-ms")
	}
	reportTakeover(b, runs)
	b.ReportMetric(0, "ns/op")
}

// freePort is a free TCP port on loopback (memberlist binds TCP and UDP on
// it; both are free in practice when the TCP port is).
func freePort(b *testing.B) int {
	b.Helper()
	addr := testbed.FreeAddr(b)
	n, err := strconv.Atoi(addr[strings.LastIndexByte(addr, ':')+1:])
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// kill sends SIGKILL to a hub process.
func (h *hubProc) kill() error { return syscall.Kill(h.proc.PID(), syscall.SIGKILL) }
