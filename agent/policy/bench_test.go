package policy_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/policy/policytest"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

// roundSink counts the reports of one generation, and says when all have
// come.
type roundSink struct {
	want int

	mu         sync.Mutex
	generation int64
	reported   int
	compliant  int
	done       chan struct{}
}

func (s *roundSink) Report(_ context.Context, p policy.Ref, st *fleetv1.PolicyStatus) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.Generation != s.generation {
		return nil
	}
	if st.Compliant == fleetv1.Compliant {
		s.compliant++
	}
	if s.reported++; s.reported == s.want {
		close(s.done)
	}
	return nil
}

func (s *roundSink) Pruned(context.Context, policy.Ref) error { return nil }

// next starts counting generation g, and returns the channel closed when
// every policy has reported it.
func (s *roundSink) next(g int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.generation, s.reported, s.compliant, s.done = g, 0, 0, make(chan struct{})
	return s.done
}

func (s *roundSink) counts() (reported, compliant int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reported, s.compliant
}

// BenchmarkEvaluate100Policies50Objects evaluates 100 inform policies of 50
// musthave ConfigMap templates each (5,000 objects, all compliant, in 10
// namespaces) on one real cluster. One op is a round: every policy's
// generation moves on, and the round ends when all 100 statuses of that
// generation have been reported. Allocations are the engine's per round
// (the objects are in the informers' caches before the timer starts).
func BenchmarkEvaluate100Policies50Objects(b *testing.B) {
	const policies, objects, namespaces = 100, 50, 10
	cp := controlplane.Start(b)
	rc := rest.CopyConfig(cp.RESTConfig)
	rc.QPS, rc.Burst = 2000, 4000
	dyn := dynamic.NewForConfigOrDie(rc)
	ctx := context.Background()
	for n := range namespaces {
		ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
			"metadata": map[string]any{"name": fmt.Sprintf("bench-%d", n)}}}
		if _, err := dyn.Resource(nsGVR).Create(ctx, ns, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	cm := func(p, o int) (namespace, name string) {
		return fmt.Sprintf("bench-%d", p%namespaces), fmt.Sprintf("p%d-o%d", p, o)
	}
	// Create the objects, 16 at a time.
	work := make(chan [2]int)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for po := range work {
				ns, name := cm(po[0], po[1])
				o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
					"metadata": map[string]any{"name": name, "namespace": ns, "labels": map[string]any{"policy": fmt.Sprint(po[0])}},
					"data":     map[string]any{"setting": name, "mode": "strict", "other": "free"}}}
				if _, err := dyn.Resource(cmGVR).Namespace(ns).Create(ctx, o, metav1.CreateOptions{}); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for p := range policies {
		for o := range objects {
			work <- [2]int{p, o}
		}
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}

	var ps []*fleetv1.Policy
	for p := range policies {
		var ts []fleetv1.ObjectTemplate
		for o := range objects {
			ns, name := cm(p, o)
			ts = append(ts, tmpl(b, fleetv1.MustHave, fmt.Sprintf(
				"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: %s, namespace: %s, labels: {policy: '%d'}}\ndata: {setting: %s, mode: strict}", name, ns, p, name)))
		}
		ps = append(ps, newPolicy(fmt.Sprintf("bench-%d", p), fleetv1.RemediationInform, ts...))
	}
	sink := &roundSink{want: policies}
	source := policytest.NewSource()
	eng, err := policy.New(policy.Config{RESTConfig: cp.RESTConfig, Source: source, Sink: sink, Logger: testutil.Logger(b, slog.LevelWarn)})
	if err != nil {
		b.Fatal(err)
	}
	testutil.Run(b, eng.Run, nil)

	generation := int64(1)
	round := func() {
		done := sink.next(generation)
		for _, p := range ps {
			p.Generation = generation
		}
		source.Set(ps...)
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			reported, _ := sink.counts()
			b.Fatalf("round %d: %d of %d policies reported", generation, reported, policies)
		}
		generation++
	}
	round() // the first round starts the informer and fills its cache
	if _, compliant := sink.counts(); compliant != policies {
		b.Fatalf("%d of %d policies compliant", compliant, policies)
	}
	b.ReportAllocs()
	rounds := 0
	cpuBefore := processCPU()
	for b.Loop() {
		round()
		rounds++
	}
	// The engine's CPU: the process's user + system time over the rounds
	// (the apiserver runs apart), on however many cores it used.
	b.ReportMetric(float64((processCPU()-cpuBefore).Microseconds())/1000/float64(rounds), "cpu-ms/round")
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(rounds), "ms/round")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(rounds*policies*objects), "ns/object")
	// The process is the engine (its informer cache of the 5,000 objects
	// included) and the benchmark's harness; the apiserver runs apart.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
	if rss, err := procRSS(); err == nil {
		b.ReportMetric(rss/(1<<20), "rss-MiB")
	}
}

// processCPU is the user + system time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procRSS is the process's resident memory, in bytes.
func procRSS() (float64, error) {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kib * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/self/status")
}
