package ingest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// shape is one simulated cluster's inventory: what the agent's k8s_inventory
// receiver reports for it. The defaults give 983 series per cluster, about
// 98k for a fleet of 100, the scale FACTS.md's receiver figures were taken at.
type shape struct {
	nodes, namespaces, deployments, statefulSets, daemonSets int
}

var defaultShape = shape{nodes: 30, namespaces: 30, deployments: 150, statefulSets: 20, daemonSets: 10}

// series is one series of a cluster: its sorted labels and how its value
// moves. The hub's recording rules are evaluated twice per agent interval,
// so their outputs carry two samples per step (perStep).
type series struct {
	labels  []prompb.Label
	value   func(step int) float64
	perStep int
}

// fleet is the simulated fleet: every cluster's series, built once.
type fleet struct {
	clusters []string
	series   [][]series // by cluster
	interval time.Duration
}

// newFleet builds n clusters of the given shape, reporting every interval
// as the agent does (its default collection interval is 30s). With
// hubState, each cluster also has what the hub holds besides inventory
// after running a while: the agent's own metrics, event counts,
// recording-rule outputs and alerts.
func newFleet(n int, sh shape, interval time.Duration, hubState bool) *fleet {
	f := &fleet{interval: interval}
	for i := range n {
		name := clusterName(i)
		f.clusters = append(f.clusters, name)
		ss := clusterSeries(name, fmt.Sprintf("set-%d", i%4), i, sh)
		if hubState {
			ss = withHubState(ss, name, i, interval)
		}
		f.series = append(f.series, ss)
	}
	return f
}

func clusterName(i int) string { return fmt.Sprintf("cluster-%03d", i) }

// seriesCount is the number of series of the whole fleet.
func (f *fleet) seriesCount() int {
	n := 0
	for _, s := range f.series {
		n += len(s)
	}
	return n
}

// samplesPerStep is the number of samples one step of the fleet sends.
func (f *fleet) samplesPerStep() int {
	n := 0
	for _, ss := range f.series {
		for _, s := range ss {
			n += max(s.perStep, 1)
		}
	}
	return n
}

// request is cluster c's remote-write 1.0 request for one step: every series
// once, at the step's time, as one agent collection is one batch.
// Agents are not synchronised, so each cluster reports at its own offset
// within the interval.
func (f *fleet) request(c, step int, start time.Time) []byte {
	ts := start.Add(time.Duration(step)*f.interval + time.Duration(c*97)*time.Millisecond)
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(f.series[c]))}
	for i, s := range f.series[c] {
		n := max(s.perStep, 1)
		samples := make([]prompb.Sample, n)
		for k := range samples {
			at := ts.Add(time.Duration(k) * f.interval / time.Duration(n))
			samples[k] = prompb.Sample{Timestamp: at.UnixMilli(), Value: s.value(step)}
		}
		req.Timeseries[i] = prompb.TimeSeries{Labels: s.labels, Samples: samples}
	}
	raw, err := req.Marshal()
	if err != nil {
		panic(err) // a WriteRequest of plain values always marshals
	}
	return snappy.Encode(nil, raw)
}

// requestV2 is the same request as remote write 2.0, as the agent's
// exporter sends it to the hub.
func (f *fleet) requestV2(c, step int, start time.Time) []byte {
	return toV2(f.request(c, step, start))
}

// toV2 turns a snappy remote-write 1.0 request into the same samples as
// remote write 2.0: labels as references into one symbol table per
// request, each series with its type.
func toV2(body []byte) []byte {
	v1 := prompb.WriteRequest{}
	raw, _ := snappy.Decode(nil, body)
	if err := v1.Unmarshal(raw); err != nil {
		panic(err) // our own encoding
	}
	syms := writev2.NewSymbolTable()
	req := writev2.Request{Timeseries: make([]writev2.TimeSeries, len(v1.Timeseries))}
	for i, ts := range v1.Timeseries {
		refs := make([]uint32, 0, 2*len(ts.Labels))
		typ := writev2.Metadata_METRIC_TYPE_GAUGE
		for _, l := range ts.Labels {
			refs = append(refs, syms.Symbolize(l.Name), syms.Symbolize(l.Value))
			if l.Name == "__name__" && strings.HasSuffix(l.Value, "_total") {
				typ = writev2.Metadata_METRIC_TYPE_COUNTER
			}
		}
		samples := make([]writev2.Sample, len(ts.Samples))
		for k, s := range ts.Samples {
			samples[k] = writev2.Sample{Value: s.Value, Timestamp: s.Timestamp}
		}
		req.Timeseries[i] = writev2.TimeSeries{LabelsRefs: refs, Samples: samples, Metadata: writev2.Metadata{Type: typ}}
	}
	req.Symbols = syms.Symbols()
	raw, err := req.Marshal()
	if err != nil {
		panic(err)
	}
	return snappy.Encode(nil, raw)
}

// load is a pre-generated load: bodies[i][step] are sender i's requests
// for that step, sent in order on its own connection with the client
// certificate of cluster senders[i]. Every target gets these very bytes; a
// target that speaks remote write 2.0 may get bodiesV2 instead, the same
// samples.
type load struct {
	clusters    []string // the clusters' names, as their certificates carry them
	senders     []int    // each sender's cluster
	start       time.Time
	interval    time.Duration
	steps       int
	bodies      [][][][]byte
	bodiesV2    [][][][]byte
	bytes       int
	bytesV2     int
	samples     int   // every sample of the load
	stepSamples []int // samples of each step
	active      int   // series that get a sample in the last step
	distinct    int   // series that get a sample in any step: the head's series afterwards
}

// rest is the number of samples of steps 1 and later.
func (l *load) rest() int { return l.samples - l.stepSamples[0] }

// newLoad is the fleet's load: one sender per cluster, one request per
// cluster and step.
func newLoad(f *fleet, start time.Time, steps int, withV2 bool) *load {
	n := len(f.clusters)
	l := &load{clusters: f.clusters, start: start, interval: f.interval, steps: steps,
		bodies: make([][][][]byte, n), bodiesV2: make([][][][]byte, n)}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for c := range f.clusters {
		l.senders = append(l.senders, c)
		// Clusters are independent: generate them on every core.
		wg.Go(func() {
			v1, v2 := make([][][]byte, steps), make([][][]byte, steps)
			n1, n2 := 0, 0
			for s := range steps {
				v1[s] = [][]byte{f.request(c, s, start)}
				n1 += len(v1[s][0])
				if withV2 {
					v2[s] = [][]byte{f.requestV2(c, s, start)}
					n2 += len(v2[s][0])
				}
			}
			mu.Lock()
			l.bodies[c], l.bodiesV2[c] = v1, v2
			l.bytes += n1
			l.bytesV2 += n2
			mu.Unlock()
		})
	}
	wg.Wait()
	for range steps {
		l.stepSamples = append(l.stepSamples, f.samplesPerStep())
	}
	l.samples = f.samplesPerStep() * steps
	l.active, l.distinct = f.seriesCount(), f.seriesCount()
	return l
}

// clusterSeries lists one cluster's series with the labels the agent sends:
// the metric's own attributes, the resource's (node, namespace, workload and
// their UIDs) and the cluster identity every resource carries.
func clusterSeries(cluster, set string, idx int, sh shape) []series {
	var out []series
	add := func(name string, value func(int) float64, pairs ...string) {
		lbls := []prompb.Label{
			{Name: "__name__", Value: name},
			{Name: "k8s_cluster_name", Value: cluster},
			{Name: "fleetpulse_cluster_set", Value: set},
		}
		for i := 0; i+1 < len(pairs); i += 2 {
			lbls = append(lbls, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
		}
		slices.SortFunc(lbls, func(a, b prompb.Label) int { return strings.Compare(a.Name, b.Name) })
		out = append(out, series{labels: lbls, value: value})
	}
	constant := func(v float64) func(int) float64 { return func(int) float64 { return v } }
	// drifting moves by one every few steps, as pod counts and requests do.
	drifting := func(base float64, seed int) func(int) float64 {
		return func(step int) float64 { return base + float64((step+seed)/(3+seed%5)%4) }
	}

	for n := range sh.nodes {
		node := fmt.Sprintf("%s-node-%d", cluster, n)
		res := []string{"k8s_node_name", node, "k8s_node_uid", uid(idx, 1, n)}
		for _, cond := range []string{"Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"} {
			status := "false"
			if cond == "Ready" {
				status = "true"
			}
			add("k8s_node_condition_status", constant(1), append(res, "k8s_node_condition_type", cond, "k8s_node_condition_status", status)...)
		}
		for _, m := range []struct {
			name string
			v    float64
		}{
			{"k8s_node_allocatable_cpu", 31.5}, {"k8s_node_allocatable_memory_bytes", 120 << 30}, {"k8s_node_allocatable_pods", 110},
			{"k8s_node_capacity_cpu", 32}, {"k8s_node_capacity_memory_bytes", 128 << 30}, {"k8s_node_capacity_pods", 110},
		} {
			add(m.name, constant(m.v), res...)
		}
		add("k8s_node_cpu_request", drifting(12, n), res...)
		add("k8s_node_memory_request_bytes", drifting(40<<30, n), res...)
	}
	nodes := float64(sh.nodes)
	add("k8s_cluster_node_count", constant(nodes), "k8s_node_condition_ready", "true")
	add("k8s_cluster_node_count", constant(0), "k8s_node_condition_ready", "false")
	for _, m := range []struct {
		name string
		v    float64
	}{
		{"k8s_cluster_allocatable_cpu", 31.5 * nodes}, {"k8s_cluster_allocatable_memory_bytes", 120 << 30 * nodes}, {"k8s_cluster_allocatable_pods", 110 * nodes},
		{"k8s_cluster_capacity_cpu", 32 * nodes}, {"k8s_cluster_capacity_memory_bytes", 128 << 30 * nodes}, {"k8s_cluster_capacity_pods", 110 * nodes},
	} {
		add(m.name, constant(m.v))
	}
	add("k8s_cluster_info", constant(1), "k8s_cluster_version", "v1.35.4", "k8s_cluster_platform", "linux/amd64")
	add("k8s_cluster_cpu_request", drifting(12*nodes, idx))
	add("k8s_cluster_memory_request_bytes", drifting(40<<30*nodes, idx))
	for ns := range sh.namespaces {
		name := fmt.Sprintf("team-%02d", ns)
		for _, phase := range []string{"pending", "running", "succeeded", "failed", "unknown"} {
			v := constant(0)
			if phase == "running" {
				v = drifting(25, ns)
			}
			add("k8s_cluster_pod_count", v, "k8s_namespace_name", name, "k8s_pod_status_phase", phase)
		}
		add("k8s_cluster_container_restarts", drifting(float64(ns), ns), "k8s_namespace_name", name)
		add("k8s_namespace_phase", constant(1), "k8s_namespace_name", name, "k8s_namespace_uid", uid(idx, 2, ns), "k8s_namespace_phase", "active")
	}
	add("k8s_cluster_container_waiting", constant(1), "k8s_namespace_name", "team-00", "k8s_container_status_reason", "CrashLoopBackOff")
	add("k8s_cluster_container_waiting", constant(2), "k8s_namespace_name", "team-01", "k8s_container_status_reason", "ImagePullBackOff")
	workloads := func(kind string, n int, metrics ...string) {
		for w := range n {
			ns := fmt.Sprintf("team-%02d", w%sh.namespaces)
			res := []string{"k8s_namespace_name", ns, "k8s_" + kind + "_name", fmt.Sprintf("%s-%d", kind, w), "k8s_" + kind + "_uid", uid(idx, len(kind), w)}
			for _, m := range metrics {
				add("k8s_"+kind+"_"+m, drifting(3, w), res...)
			}
		}
	}
	workloads("deployment", sh.deployments, "pod_desired", "pod_available")
	workloads("statefulset", sh.statefulSets, "pod_desired", "pod_ready")
	workloads("daemonset", sh.daemonSets, "node_desired_scheduled", "node_current_scheduled", "node_ready")
	return out
}

// uid is a stable UUID-shaped string, as Kubernetes object UIDs are.
func uid(cluster, kind, i int) string {
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", cluster*7919+kind, kind, i%4096, cluster%4096, i*2654435761%(1<<48))
}
