package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// The ring and lease timings of the replicas test, short so that a kill is
// over in seconds; their ratios are the defaults' (heartbeat timeout three
// ring heartbeats and more, renew deadline below the lease duration).
const (
	// agentHeartbeat is the heartbeat period the hub gives agents: the
	// unit a killed owner's clusters must reach a new owner within (two).
	agentHeartbeat = 5 * time.Second
	// ringHeartbeat and ringTimeout: a killed replica is forgotten, and its
	// clusters have owners again, at most ringTimeout + ringHeartbeat after
	// its last heartbeat, well within one agent heartbeat period.
	ringHeartbeat = 500 * time.Millisecond
	ringTimeout   = 3 * time.Second
	// leaseDuration, renewDeadline, retryPeriod: the controllers' Lease.
	leaseDuration = 4 * time.Second
	renewDeadline = 3 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// replica is one `fleetpulse hub` process of a ring, on fixed loopback
// ports and a fixed data folder, so that it can be killed and started again
// as the same replica.
type replica struct {
	id                            string
	httpAddr, agentAddr, grpcAddr string
	mlAddr                        string
	dir                           string
	args                          []string
	log                           string
	cmd                           *exec.Cmd
	done                          chan struct{}
}

// replicaSet is the ring's replicas; every replica joins every other's
// memberlist address, so that any of them, restarted, finds the others.
type replicaSet struct {
	t        *testing.T
	bin      string
	common   []string
	replicas []*replica
}

func newReplicaSet(t *testing.T, bin string, n int, common []string) *replicaSet {
	s := &replicaSet{t: t, bin: bin, common: common}
	for i := range n {
		s.replicas = append(s.replicas, &replica{
			id:       fmt.Sprintf("hub-%d", i),
			httpAddr: testbed.FreeAddr(t), agentAddr: testbed.FreeAddr(t), grpcAddr: testbed.FreeAddr(t), mlAddr: testbed.FreeAddr(t),
			dir: t.TempDir(),
		})
	}
	for _, r := range s.replicas {
		_, mlPort, _ := net.SplitHostPort(r.mlAddr)
		r.args = append([]string{"hub",
			"--http.listen-address=" + r.httpAddr, "--agents.listen-address=" + r.agentAddr, "--grpc.listen-address=" + r.grpcAddr,
			"--replica.name=" + r.id, "--storage.tsdb.path=" + r.dir,
			"--ring.enabled", "--ring.instance-id=" + r.id, "--ring.instance-addr=127.0.0.1",
			"--ring.heartbeat-period=" + ringHeartbeat.String(), "--ring.heartbeat-timeout=" + ringTimeout.String(),
			"--memberlist.bind-addr=127.0.0.1", "--memberlist.bind-port=" + mlPort,
			"--query.peer-refresh-interval=500ms", "--shutdown-timeout=5s",
		}, common...)
		for _, other := range s.replicas {
			if other != r {
				r.args = append(r.args, "--memberlist.join="+other.mlAddr)
			}
		}
		r.log = filepath.Join(t.TempDir(), r.id+".log")
	}
	t.Cleanup(func() {
		for _, r := range s.replicas {
			s.kill(r)
		}
		if t.Failed() {
			for _, r := range s.replicas {
				t.Logf("%s's last log lines:\n%s", r.id, tailFile(r.log, 40))
			}
		}
	})
	return s
}

// start runs r (again, on its data) and returns at once.
func (s *replicaSet) start(r *replica) {
	s.t.Helper()
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	r.cmd = exec.Command(s.bin, r.args...)
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	r.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		f.Close()
		close(done)
	}(r.cmd, r.done)
}

// waitReady polls r's /-/ready until it answers 200.
func (s *replicaSet) waitReady(r *replica) {
	s.t.Helper()
	testutil.Eventually(s.t, 90*time.Second, func() error {
		select {
		case <-r.done:
			return fmt.Errorf("%s exited: %s", r.id, tailFile(r.log, 20))
		default:
		}
		resp, err := http.Get("http://" + r.httpAddr + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: /-/ready %s", r.id, resp.Status)
		}
		return nil
	})
}

// kill sends SIGKILL to r, if it runs, and waits for it to exit: no
// shutdown, no flush, no leaving the ring.
func (s *replicaSet) kill(r *replica) {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
}

// leader is the replica whose fleetpulse_hub_controllers_leader is 1 among
// those running, or nil.
func (s *replicaSet) leader(among []*replica) *replica {
	for _, r := range among {
		if v, ok := scrapeGauge("http://"+r.httpAddr+"/metrics", "fleetpulse_hub_controllers_leader"); ok && v == 1 {
			return r
		}
	}
	return nil
}

// scrapeGauge reads one unlabelled sample from a /metrics page.
func scrapeGauge(url, name string) (float64, bool) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func tailFile(path string, lines int) string {
	data, _ := os.ReadFile(path)
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// balancer is what a Kubernetes Service in front of the replicas' agents'
// ports is to an agent: a TCP address that passes each connection (TLS
// and all) to one of the replicas, round robin over those that accept.
type balancer struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []string
	next     int
}

func newBalancer(t *testing.T) *balancer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go b.serve()
	return b
}

func (b *balancer) URL() string { return "https://" + b.ln.Addr().String() }

func (b *balancer) add(addrs ...string) {
	b.mu.Lock()
	b.backends = append(b.backends, addrs...)
	b.mu.Unlock()
}

func (b *balancer) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		go b.pass(c)
	}
}

func (b *balancer) pass(c net.Conn) {
	defer c.Close()
	b.mu.Lock()
	backends, start := append([]string(nil), b.backends...), b.next
	b.next++
	b.mu.Unlock()
	for i := range backends {
		up, err := net.DialTimeout("tcp", backends[(start+i)%len(backends)], time.Second)
		if err != nil {
			continue
		}
		defer up.Close()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		_, _ = io.Copy(c, up)
		return
	}
}

// notification is the part of Alertmanager's webhook payload the test
// counts.
type notification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// webhook counts Alertmanager's notifications, per cluster and status.
type webhook struct {
	mu     sync.Mutex
	counts map[string]map[string]int // cluster → status → notifications carrying it
}

func newWebhook(t *testing.T) (*webhook, string) {
	w := &webhook{counts: map[string]map[string]int{}}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n notification
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<22)).Decode(&n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		for _, a := range n.Alerts {
			c := a.Labels["cluster"]
			if w.counts[c] == nil {
				w.counts[c] = map[string]int{}
			}
			w.counts[c][a.Status]++
		}
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return w, srv.URL
}

func (w *webhook) snapshot() map[string]map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]map[string]int, len(w.counts))
	for c, m := range w.counts {
		out[c] = map[string]int{}
		for s, n := range m {
			out[c][s] = n
		}
	}
	return out
}

// rawQuery runs an instant query through thanos query's HTTP API without
// deduplication, so that each replica's copy of a series comes back with
// its replica label.
func rawQuery(ctx context.Context, base, q string, at time.Time) (model.Value, error) {
	v := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}, "dedup": {"false"}}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/query?"+v.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("decode %s: %w", q, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	var data struct {
		Type   model.ValueType `json:"resultType"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body.Data, &data); err != nil {
		return nil, err
	}
	switch data.Type {
	case model.ValVector:
		var vec model.Vector
		return vec, json.Unmarshal(data.Result, &vec)
	case model.ValMatrix:
		var m model.Matrix
		return m, json.Unmarshal(data.Result, &m)
	}
	return nil, fmt.Errorf("%s: result type %s", q, data.Type)
}

// samplesByCluster reads metric's raw samples of the last window through
// thanos query, every replica's copy, and returns each cluster's sample
// timestamps (milliseconds), merged.
func samplesByCluster(ctx context.Context, base, selector string, window time.Duration, at time.Time) (map[string]map[int64]bool, error) {
	byReplica, err := samplesByReplica(ctx, base, selector, window, at)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int64]bool{}
	for c, replicas := range byReplica {
		out[c] = map[int64]bool{}
		for _, ts := range replicas {
			for at := range ts {
				out[c][at] = true
			}
		}
	}
	return out, nil
}

// samplesByReplica reads metric's raw samples of the last window through
// thanos query, every replica's copy, and returns each cluster's sample
// timestamps (milliseconds) per replica that holds them.
func samplesByReplica(ctx context.Context, base, selector string, window time.Duration, at time.Time) (map[string]map[string]map[int64]bool, error) {
	v, err := rawQuery(ctx, base, fmt.Sprintf("%s[%ds]", selector, int(window.Seconds())+1), at)
	if err != nil {
		return nil, err
	}
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, errors.New("want a matrix")
	}
	out := map[string]map[string]map[int64]bool{}
	for _, s := range m {
		c, r := string(s.Metric["cluster"]), string(s.Metric[metricstore.DefaultReplicaLabel])
		if out[c] == nil {
			out[c] = map[string]map[int64]bool{}
		}
		if out[c][r] == nil {
			out[c][r] = map[int64]bool{}
		}
		for _, p := range s.Values {
			out[c][r][int64(p.Timestamp)] = true
		}
	}
	return out, nil
}

// holders returns, for each cluster matched by selector, the replicas that
// hold a sample of it newer than since.
func holders(ctx context.Context, base, selector string, since, at time.Time) (map[string][]string, error) {
	q := fmt.Sprintf("max by (cluster, %s) (timestamp(%s)) > %d", metricstore.DefaultReplicaLabel, selector, since.Unix())
	v, err := rawQuery(ctx, base, q, at)
	if err != nil {
		return nil, err
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, errors.New("want a vector")
	}
	out := map[string][]string{}
	for _, s := range vec {
		c := string(s.Metric["cluster"])
		out[c] = append(out[c], string(s.Metric[metricstore.DefaultReplicaLabel]))
	}
	return out, nil
}
