package ingest

import (
	"fmt"
	"sync"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

// bigCluster is one large cluster's remote write, as a Prometheus or an
// agent scraping its kubelets sends it: pods × containers × metrics series,
// each of ten labels, batched into requests of batch series and shared by
// senders concurrent connections (the sender's shards). With churnEvery >
// 0, every churnEvery steps a tenth of the pods are replaced by new ones
// (new name and UID, so new series), as rollouts replace pods.
type bigCluster struct {
	name               string
	pods, containers   int
	metrics            int
	batch, senders     int
	churnEvery         int
	interval           time.Duration
	nodes, namespaces  int
	metricNames        []string
	containerNames     []string
	nodeNames, nsNames []string
}

// largeCluster is the large-cluster shape: 100,000 active series of
// ten labels, 2,000 series per request, four senders.
func largeCluster(churnEvery int) *bigCluster {
	c := &bigCluster{name: "cluster-large", pods: 1000, containers: 2, metrics: 50, batch: 2000, senders: 4,
		churnEvery: churnEvery, interval: time.Minute, nodes: 100, namespaces: 20}
	for m := range c.metrics {
		c.metricNames = append(c.metricNames, fmt.Sprintf("container_metric_%02d_total", m))
	}
	for k := range c.containers {
		c.containerNames = append(c.containerNames, fmt.Sprintf("app-%d", k))
	}
	for n := range c.nodes {
		c.nodeNames = append(c.nodeNames, fmt.Sprintf("node-%03d", n))
	}
	for n := range c.namespaces {
		c.nsNames = append(c.nsNames, fmt.Sprintf("team-%02d", n))
	}
	return c
}

func (c *bigCluster) seriesCount() int { return c.pods * c.containers * c.metrics }

// generation is how many times pod p has been replaced by step: churn
// event k (at step k*churnEvery) replaces the pods whose index is k-1
// modulo 10, a tenth of them.
func (c *bigCluster) generation(p, step int) int {
	if c.churnEvery == 0 {
		return 0
	}
	events := step / c.churnEvery
	g := events / 10
	if p%10 < events%10 {
		g++
	}
	return g
}

// labels are series (p, k, m)'s ten labels at generation g, sorted by name.
func (c *bigCluster) labels(p, k, m, g int) []prompb.Label {
	node := c.nodeNames[p%c.nodes]
	return []prompb.Label{
		{Name: "__name__", Value: c.metricNames[m]},
		{Name: "container", Value: c.containerNames[k]},
		{Name: "instance", Value: node + ":10250"},
		{Name: "job", Value: "kubelet"},
		{Name: "k8s_cluster_name", Value: c.name},
		{Name: "namespace", Value: c.nsNames[p%c.namespaces]},
		{Name: "node", Value: node},
		{Name: "pod", Value: fmt.Sprintf("web-%04d-g%d", p, g)},
		{Name: "pod_uid", Value: uid(g, 9, p)},
		{Name: "service", Value: fmt.Sprintf("svc-%03d", p%97)},
	}
}

// requests are step's requests of batch series each, in series order.
func (c *bigCluster) requests(step int, start time.Time) [][]byte {
	ts := start.Add(time.Duration(step) * c.interval).UnixMilli()
	var out [][]byte
	req := prompb.WriteRequest{}
	flush := func() {
		raw, err := req.Marshal()
		if err != nil {
			panic(err) // plain values always marshal
		}
		out = append(out, snappy.Encode(nil, raw))
		req.Timeseries = req.Timeseries[:0]
	}
	for p := range c.pods {
		g := c.generation(p, step)
		for k := range c.containers {
			for m := range c.metrics {
				v := float64((p+k+m)*1000 + step*(1+m%7))
				req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
					Labels:  c.labels(p, k, m, g),
					Samples: []prompb.Sample{{Timestamp: ts, Value: v}},
				})
				if len(req.Timeseries) == c.batch {
					flush()
				}
			}
		}
	}
	if len(req.Timeseries) > 0 {
		flush()
	}
	return out
}

// newBigLoad pre-generates steps of c's remote write (and, with withV2, the
// same as remote write 2.0); request r of a step goes to sender r modulo
// senders.
func newBigLoad(c *bigCluster, start time.Time, steps int, withV2 bool) *load {
	l := &load{clusters: []string{c.name}, start: start, interval: c.interval, steps: steps,
		bodies: make([][][][]byte, c.senders), bodiesV2: make([][][][]byte, c.senders)}
	for i := range c.senders {
		l.senders = append(l.senders, 0)
		l.bodies[i] = make([][][]byte, steps)
		l.bodiesV2[i] = make([][][]byte, steps)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for s := range steps {
		// Steps are independent: generate them on every core.
		wg.Go(func() {
			reqs := c.requests(s, start)
			n1, n2 := 0, 0
			v1, v2 := make([][][]byte, c.senders), make([][][]byte, c.senders)
			for r, body := range reqs {
				v1[r%c.senders] = append(v1[r%c.senders], body)
				n1 += len(body)
				if withV2 {
					b2 := toV2(body)
					v2[r%c.senders] = append(v2[r%c.senders], b2)
					n2 += len(b2)
				}
			}
			mu.Lock()
			for i := range c.senders {
				l.bodies[i][s], l.bodiesV2[i][s] = v1[i], v2[i]
			}
			l.bytes += n1
			l.bytesV2 += n2
			mu.Unlock()
		})
	}
	wg.Wait()
	n := c.seriesCount()
	for range steps {
		l.stepSamples = append(l.stepSamples, n)
	}
	l.samples = n * steps
	l.active = n
	// Every replacement of a pod adds its containers × metrics series.
	l.distinct = n
	for p := range c.pods {
		l.distinct += c.generation(p, steps-1) * c.containers * c.metrics
	}
	return l
}
