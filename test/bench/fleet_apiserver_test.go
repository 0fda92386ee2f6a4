package bench

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiserverWrites reads the kube-apiserver's request counters and returns
// its writes so far (POST, PUT, PATCH, DELETE, APPLY) by "verb resource" (a
// subresource after a slash), so that two readings give what a window cost.
func apiserverWrites(ctx context.Context, cfg *rest.Config) (map[string]float64, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apiserver client: %w", err)
	}
	raw, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the apiserver's metrics: %w", err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("parse the apiserver's metrics: %w", err)
	}
	out := map[string]float64{}
	mf := families["apiserver_request_total"]
	if mf == nil {
		return out, nil
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		switch l["verb"] {
		case "POST", "PUT", "PATCH", "DELETE", "APPLY":
		default:
			continue
		}
		res := l["resource"]
		if l["subresource"] != "" {
			res += "/" + l["subresource"]
		}
		out[l["verb"]+" "+res] += m.GetCounter().GetValue()
	}
	return out, nil
}

// writesBetween is the apiserver's writes between two readings by verb and
// resource, and their total: every client's, the hub's leader election and
// the control plane's own included, which at thousands of clusters are
// noise.
func writesBetween(before, after map[string]float64) (map[string]float64, float64) {
	out := map[string]float64{}
	total := 0.0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			out[k] = d
			total += d
		}
	}
	return out, total
}

func fmtWrites(w map[string]float64, per float64) string {
	keys := make([]string, 0, len(w))
	for k := range w {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %.3f", k, w[k]/per)
	}
	return strings.Join(parts, ", ")
}

// starveAPIServer confines the kube-apiserver (every thread) to one CPU
// and starts a process that keeps that CPU busy, so the apiserver gets at
// most a share of one core while the hub and the fleet run on. The
// returned function ends the neighbour and lets the apiserver use every
// CPU again.
func starveAPIServer(b *testing.B, pid int) func() {
	b.Helper()
	if out, err := exec.Command("taskset", "-a", "-p", "-c", "0", strconv.Itoa(pid)).CombinedOutput(); err != nil {
		b.Fatalf("pin the apiserver to CPU 0: %v\n%s", err, out)
	}
	hog := exec.Command("taskset", "-c", "0", "sh", "-c", "while :; do :; done")
	if err := hog.Start(); err != nil {
		b.Fatalf("start a CPU-bound neighbour on CPU 0: %v", err)
	}
	return func() {
		_ = hog.Process.Kill()
		_ = hog.Wait()
		_ = exec.Command("taskset", "-a", "-p", "-c", fmt.Sprintf("0-%d", runtime.NumCPU()-1), strconv.Itoa(pid)).Run()
	}
}
