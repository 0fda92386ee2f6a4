package bench

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetpulse/fleetpulse/testbed"
)

// The observed cluster and the measurement.
const (
	benchNodes         = 100
	benchNamespaces    = 30
	benchPodsPerNS     = 100
	benchPods          = benchNamespaces * benchPodsPerNS
	benchLabel         = "fleetpulse.io/bench"
	collectionInterval = 10 * time.Second
	warmUp             = 30 * time.Second
	window             = 60 * time.Second
	sampleEvery        = time.Second
	// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
	// it is 100 on every Linux architecture Go supports.
	clockTicks = 100
)

// BenchmarkAgentFootprint runs fleetpulse-agent (built-in pipeline) and an
// upstream OpenTelemetry Collector contrib pipeline (k8s_cluster receiver →
// batch → prometheusremotewrite, resource_to_telemetry_conversion on) side by
// side against one test-bed cluster of 100 kwok nodes and 3,000 Running pods,
// both collecting every 10s and writing to one real Prometheus. After a
// warm-up it samples each process's resident memory every second over a
// window, and its CPU time over the window, and checks in Prometheus that
// both delivered series. Each iteration is a whole measurement; run it with
// -benchtime=1x.
func BenchmarkAgentFootprint(b *testing.B) {
	cluster := testbed.StartClusters(b, "bench", 1, testbed.ClusterOptions{
		Nodes: benchNodes,
		NodeCapacity: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("32"),
			corev1.ResourceMemory: resource.MustParse("128Gi"),
			corev1.ResourcePods:   resource.MustParse("110"),
		},
		StartTimeout: 5 * time.Minute,
	})[0]
	client := kubernetes.NewForConfigOrDie(cluster.RESTConfig)
	start := time.Now()
	createPods(b, client, cluster.Name)
	b.Logf("created %d pods in %s", benchPods, time.Since(start).Round(time.Second))
	waitRunning(b, client, benchPods, 5*time.Minute)
	b.Logf("%d pods Running after %s", benchPods, time.Since(start).Round(time.Second))

	prom := testbed.StartPrometheus(b, testbed.PrometheusOptions{})
	pc, err := promapi.NewClient(promapi.Config{Address: prom.URL})
	if err != nil {
		b.Fatal(err)
	}
	api := promv1.NewAPI(pc)

	root, err := testbed.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	binDir := b.TempDir()
	agentBin := filepath.Join(binDir, "fleetpulse-agent")
	peerBin := filepath.Join(binDir, "contribpeer")
	goBuild(b, root, agentBin, "build", "-o", agentBin, "./cmd/fleetpulse-agent")
	goBuild(b, root, peerBin, "build", "-C", "test/bench/contribpeer", "-o", peerBin, ".")
	agentArgs := agentFlags(b, prom.URL, cluster.KubeconfigPath)

	var agentRSS, peerRSS, agentMax, peerMax, agentCPU, peerCPU, agentSeries, peerSeries float64
	var agentAnon, agentFile, peerAnon, peerFile float64
	for b.Loop() {
		work := b.TempDir()
		peerCfg := filepath.Join(work, "contribpeer.yaml")
		if err := os.WriteFile(peerCfg, []byte(peerConfig(prom.RemoteWriteURL(), testbed.FreeAddr(b))), 0o644); err != nil {
			b.Fatal(err)
		}
		agent := startChild(b, "fleetpulse-agent", work, nil, agentBin,
			append(agentArgs, "--state-dir="+filepath.Join(work, "agent-state"))...)
		peer := startChild(b, "contribpeer", work, []string{"KUBECONFIG=" + cluster.KubeconfigPath}, peerBin,
			"--config=file:"+peerCfg)

		// Warm-up: initial lists and watches, the first collections and
		// sends. Both must stay up throughout.
		for end := time.Now().Add(warmUp); time.Now().Before(end); time.Sleep(sampleEvery) {
			agent.alive(b)
			peer.alive(b)
		}

		a, p := measure(b, agent, peer)
		b.Logf("agent: RSS mean %.1f MiB (anon %.1f, file %.1f), max %.1f MiB, CPU %.2f%%", a.meanRSS, a.meanAnon, a.meanFile, a.maxRSS, a.cpu)
		b.Logf("peer:  RSS mean %.1f MiB (anon %.1f, file %.1f), max %.1f MiB, CPU %.2f%%", p.meanRSS, p.meanAnon, p.meanFile, p.maxRSS, p.cpu)

		// Both must have delivered. The agent stamps k8s_cluster_name; the
		// peer's exporter adds the external label source="contrib".
		as := waitSeries(b, api, `count({k8s_cluster_name="bench"})`)
		ps := waitSeries(b, api, `count({source="contrib"})`)
		nodes := waitSeries(b, api, `k8s_cluster_node_count{k8s_cluster_name="bench",k8s_node_condition_ready="true"}`)
		pods := waitSeries(b, api, `count(k8s_pod_phase{source="contrib"})`)
		b.Logf("delivered: agent %v series (node count %v), peer %v series (%v pods)", as, nodes, ps, pods)
		b.Logf("agent's largest metrics: %s", topMetrics(b, api, `{k8s_cluster_name="bench"}`))
		b.Logf("peer's largest metrics: %s", topMetrics(b, api, `{source="contrib"}`))

		agent.stop()
		peer.stop()
		agentRSS += a.meanRSS
		peerRSS += p.meanRSS
		agentMax += a.maxRSS
		agentAnon += a.meanAnon
		agentFile += a.meanFile
		peerAnon += p.meanAnon
		peerFile += p.meanFile
		peerMax += p.maxRSS
		agentCPU += a.cpu
		peerCPU += p.cpu
		agentSeries += as
		peerSeries += ps
	}
	n := float64(b.N)
	b.ReportMetric(agentRSS/n, "agent-rss-MiB")
	b.ReportMetric(peerRSS/n, "peer-rss-MiB")
	b.ReportMetric(agentMax/n, "agent-maxrss-MiB")
	b.ReportMetric(agentAnon/n, "agent-rssanon-MiB")
	b.ReportMetric(agentFile/n, "agent-rssfile-MiB")
	b.ReportMetric(peerAnon/n, "peer-rssanon-MiB")
	b.ReportMetric(peerFile/n, "peer-rssfile-MiB")
	b.ReportMetric(peerMax/n, "peer-maxrss-MiB")
	b.ReportMetric(agentRSS/peerRSS, "rss-ratio")
	b.ReportMetric(agentCPU/n, "agent-cpu-%")
	b.ReportMetric(peerCPU/n, "peer-cpu-%")
	b.ReportMetric(agentSeries/n, "agent-series")
	b.ReportMetric(peerSeries/n, "peer-series")
}

// peerConfig is the contrib pipeline equivalent to the agent's built-in
// inventory pipeline. Its own metrics are served, as the agent's are, on a
// free loopback port instead of the default :8888.
func peerConfig(remoteWriteURL, metricsAddr string) string {
	host, port, _ := net.SplitHostPort(metricsAddr)
	return fmt.Sprintf(`receivers:
  k8s_cluster:
    auth_type: kubeConfig
    collection_interval: %s
processors:
  batch: {}
exporters:
  prometheusremotewrite:
    endpoint: %q
    external_labels:
      source: contrib
    resource_to_telemetry_conversion:
      enabled: true
service:
  telemetry:
    metrics:
      level: normal
      readers:
        - pull:
            exporter:
              prometheus:
                host: %q
                port: %s
  pipelines:
    metrics:
      receivers: [k8s_cluster]
      processors: [batch]
      exporters: [prometheusremotewrite]
`, collectionInterval, remoteWriteURL, host, port)
}

// agentFlags are the agent's built-in-pipeline flags; its own listening
// addresses get free ports so the benchmark collides with nothing.
func agentFlags(b *testing.B, hub, kubeconfig string) []string {
	b.Helper()
	flags := []string{
		"--hub=" + hub, "--cluster-name=bench", "--kubeconfig=" + kubeconfig,
		"--collection-interval=" + collectionInterval.String(),
		"--metrics-address=" + testbed.FreeAddr(b), "--self-telemetry-address=" + testbed.FreeAddr(b),
	}
	// FLEETPULSE_BENCH_POD_METRICS=1 turns on the agent's per-pod series,
	// closer to what the peer sends (it has no switch for them).
	if os.Getenv("FLEETPULSE_BENCH_POD_METRICS") == "1" {
		flags = append(flags, "--set=receivers.k8s_inventory.pod_metrics=true")
	}
	return flags
}

// createPods creates benchNamespaces namespaces of benchPodsPerNS pods each,
// bound round-robin to the kwok nodes through spec.nodeName, so kwok makes
// them Running without the scheduler.
func createPods(b *testing.B, client kubernetes.Interface, clusterName string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for ns := range benchNamespaces {
		name := fmt.Sprintf("bench-%02d", ns)
		_, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			b.Fatal(err)
		}
	}
	// The ServiceAccount admission plugin refuses Pods until the
	// controller manager has made each namespace's default ServiceAccount.
	poll(b, ctx, "default ServiceAccount in every namespace", func() (bool, string) {
		for ns := range benchNamespaces {
			name := fmt.Sprintf("bench-%02d", ns)
			if _, err := client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return false, err.Error()
			}
		}
		return true, ""
	})

	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= benchPods || ctx.Err() != nil {
					return
				}
				if _, err := client.CoreV1().Pods(fmt.Sprintf("bench-%02d", i/benchPodsPerNS)).Create(ctx, benchPod(clusterName, i), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
					select {
					case errs <- fmt.Errorf("create pod %d: %w", i, err):
					default:
					}
					cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

func benchPod(clusterName string, i int) *corev1.Pod {
	app := fmt.Sprintf("app-%d", i%10)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("%s-%03d", app, i%benchPodsPerNS),
			Labels: map[string]string{benchLabel: "footprint", "app": app},
		},
		Spec: corev1.PodSpec{
			NodeName:                     testbed.NodeName(clusterName, i%benchNodes),
			AutomountServiceAccountToken: new(false),
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example/" + app + ":1.0",
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{
						corev1.ResourceCPU:    resource.MustParse("100m"),
						corev1.ResourceMemory: resource.MustParse("128Mi"),
					},
					Limits: corev1.ResourceList{
						corev1.ResourceMemory: resource.MustParse("256Mi"),
					},
				},
			}},
		},
	}
}

// waitRunning waits until want benchmark pods are Running.
func waitRunning(b *testing.B, client kubernetes.Interface, want int, timeout time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	poll(b, ctx, fmt.Sprintf("%d Running pods", want), func() (bool, string) {
		pods, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
			LabelSelector: benchLabel + "=footprint",
			FieldSelector: "status.phase=Running",
		})
		if err != nil {
			return false, err.Error()
		}
		return len(pods.Items) >= want, fmt.Sprintf("%d Running", len(pods.Items))
	})
}

// poll calls cond every 2s until it holds, failing the benchmark with cond's
// last word when ctx ends first.
func poll(b *testing.B, ctx context.Context, what string, cond func() (bool, string)) {
	b.Helper()
	for {
		ok, last := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatalf("waiting for %s: %v (last: %s)", what, ctx.Err(), last)
		case <-time.After(2 * time.Second):
		}
	}
}

// waitSeries waits until query returns one positive sample, and returns it.
func waitSeries(b *testing.B, api promv1.API, query string) float64 {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var got float64
	poll(b, ctx, "Prometheus to answer "+query, func() (bool, string) {
		v, _, err := api.Query(ctx, query, time.Now())
		if err != nil {
			return false, err.Error()
		}
		if vec, ok := v.(model.Vector); ok && len(vec) == 1 && vec[0].Value > 0 {
			got = float64(vec[0].Value)
			return true, ""
		}
		return false, v.String()
	})
	return got
}

// topMetrics names the metrics with the most series among selector's, for
// the log: what each side sends.
func topMetrics(b *testing.B, api promv1.API, selector string) string {
	b.Helper()
	v, _, err := api.Query(context.Background(), `topk(8, count by (__name__) (`+selector+`))`, time.Now())
	if err != nil {
		return err.Error()
	}
	vec, _ := v.(model.Vector)
	slices.SortFunc(vec, func(x, y *model.Sample) int { return cmp.Compare(y.Value, x.Value) })
	parts := make([]string, 0, len(vec))
	for _, s := range vec {
		parts = append(parts, fmt.Sprintf("%s=%v", s.Metric[model.MetricNameLabel], s.Value))
	}
	return strings.Join(parts, " ")
}

func goBuild(b *testing.B, root, out string, args ...string) {
	b.Helper()
	start := time.Now()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
	}
	b.Logf("built %s in %s", filepath.Base(out), time.Since(start).Round(100*time.Millisecond))
}

// child is a measured process, its output in a log file.
type child struct {
	name, log string
	cmd       *exec.Cmd
	done      chan struct{}
	err       error // read after done is closed
	stopOnce  sync.Once
}

func startChild(b *testing.B, name, dir string, env []string, bin string, args ...string) *child {
	b.Helper()
	c := &child{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(c.log)
	if err != nil {
		b.Fatal(err)
	}
	c.cmd = exec.Command(bin, args...)
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		_ = f.Close()
		b.Fatalf("start %s: %v", name, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		_ = f.Close()
		close(c.done)
	}()
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("%s log (last lines):\n%s", c.name, c.tail(30))
		}
		c.stop()
	})
	return c
}

// alive fails the benchmark if the process has ended.
func (c *child) alive(b *testing.B) {
	b.Helper()
	select {
	case <-c.done:
		b.Fatalf("%s ended: %v\n%s", c.name, c.err, c.tail(30))
	default:
	}
}

func (c *child) stop() {
	c.stopOnce.Do(func() {
		_ = c.cmd.Process.Kill()
		<-c.done
	})
}

func (c *child) tail(n int) string {
	data, _ := os.ReadFile(c.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// footprint is one process's resource use over the window.
type footprint struct {
	meanRSS, maxRSS float64 // MiB
	// meanAnon and meanFile split the mean RSS into anonymous memory (heap,
	// stacks) and file-backed pages (mostly the binary's own text and data).
	meanAnon, meanFile float64 // MiB
	cpu                float64 // percent of one core
}

// measure samples both processes' RSS every second over the window and
// their CPU time at its ends.
func measure(b *testing.B, procs ...*child) (agent, peer footprint) {
	b.Helper()
	res := make([]footprint, len(procs))
	cpu0 := make([]float64, len(procs))
	for i, c := range procs {
		cpu0[i] = cpuSeconds(b, c)
	}
	t0 := time.Now()
	samples := 0
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for end := t0.Add(window); time.Now().Before(end); <-tick.C {
		for i, c := range procs {
			m := memMiB(b, c)
			res[i].meanRSS += m.rss
			res[i].maxRSS = max(res[i].maxRSS, m.rss)
			res[i].meanAnon += m.anon
			res[i].meanFile += m.file
		}
		samples++
	}
	elapsed := time.Since(t0).Seconds()
	for i, c := range procs {
		res[i].meanRSS /= float64(samples)
		res[i].meanAnon /= float64(samples)
		res[i].meanFile /= float64(samples)
		res[i].cpu = 100 * (cpuSeconds(b, c) - cpu0[i]) / elapsed
	}
	return res[0], res[1]
}

// mem is one sample of a process's resident memory, in MiB.
type mem struct{ rss, anon, file float64 }

// memMiB reads VmRSS, RssAnon and RssFile from /proc/<pid>/status.
func memMiB(b *testing.B, c *child) mem {
	b.Helper()
	c.alive(b)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("%s: %v", c.name, err)
	}
	var m mem
	fields := map[string]*float64{"VmRSS:": &m.rss, "RssAnon:": &m.anon, "RssFile:": &m.file}
	found := 0
	for line := range strings.Lines(string(data)) {
		for prefix, dst := range fields {
			if rest, ok := strings.CutPrefix(line, prefix); ok {
				kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err != nil {
					b.Fatalf("%s: %s %q: %v", c.name, prefix, rest, err)
				}
				*dst = kb / 1024
				found++
			}
		}
	}
	if found != len(fields) {
		b.Fatalf("%s: /proc status lacks one of VmRSS, RssAnon, RssFile", c.name)
	}
	return m
}

// cpuSeconds reads utime+stime from /proc/<pid>/stat.
func cpuSeconds(b *testing.B, c *child) float64 {
	b.Helper()
	c.alive(b)
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("%s: %v", c.name, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		b.Fatalf("%s: short /proc stat %q", c.name, s)
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("%s: /proc stat %q: %v %v", c.name, s, err1, err2)
	}
	return (utime + stime) / clockTicks
}
