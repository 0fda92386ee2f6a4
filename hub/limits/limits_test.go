package limits

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
default:
  label_value_length: 4096
clusters:
  big-one:
    head_series: 2000000
    request_rate: 0
`))
	if err != nil {
		t.Fatal(err)
	}
	want := DefaultLimits()
	want.LabelValueLength = 4096
	if got := cfg.For("other"); got != want {
		t.Errorf("a cluster the file does not name: %+v, want the defaults with the file's default: %+v", got, want)
	}
	want.HeadSeries, want.RequestRate = 2_000_000, 0
	if got := cfg.For("big-one"); got != want {
		t.Errorf("big-one: %+v, want %+v", got, want)
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"misspelt limit", "default:\n  label_value_lenght: 1\n", "label_value_lenght"},
		{"every problem", `
default:
  labels_per_series: -1
  decompressed_bytes: 100000000
clusters:
  Not_A_Name:
    request_rate: 5
    request_burst: 0
`, "labels_per_series must not be negative|decompressed_bytes 100000000 is over|not a cluster name|request_rate 5 needs a request_burst"},
	} {
		_, err := Parse([]byte(tc.yaml))
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		for _, w := range strings.Split(tc.want, "|") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want it to say %q", tc.name, err, w)
			}
		}
	}
}

// TestDefaultsTakeWhatTheAgentSends: the defaults refuse none of the
// shapes the agent and the benchmarks send.
func TestDefaultsTakeWhatTheAgentSends(t *testing.T) {
	t.Parallel()
	d := DefaultLimits()
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want int
	}{
		{"series of a request of test/bench/ingest's 2,000-series shape", 2_000, d.SeriesPerRequest},
		{"labels of the agent's widest series, with target_info's resource attributes", 40, d.LabelsPerSeries},
		{"a Kubernetes name", 253, d.LabelValueLength},
		{"head series of a 100k-series cluster", 100_000, d.HeadSeries},
	} {
		if c.got > c.want {
			t.Errorf("%s: %d, over the default %d", c.what, c.got, c.want)
		}
	}
}

func TestReloadAndForget(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "limits.yaml")
	write := func(s string) {
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("clusters:\n  a:\n    request_rate: 1\n    request_burst: 2\n")
	reg := prometheus.NewRegistry()
	l, err := New(Options{File: file, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	a, b := l.For(context.Background(), "a"), l.For(context.Background(), "b")
	for i := range 2 {
		if r := a.AllowRequest(); r != nil {
			t.Fatalf("request %d within the burst: %v", i, r)
		}
	}
	r := a.AllowRequest()
	if r == nil || r.Status != http.StatusTooManyRequests || !strings.Contains(r.Error(), "request_rate limit of 1 ") {
		t.Fatalf("third request: %v, want 429 naming request_rate and its value", r)
	}
	for range 100 {
		if r := b.AllowRequest(); r != nil {
			t.Fatalf("cluster b has the defaults: %v", r)
		}
	}

	write("clusters:\n  a:\n    label_name_length: 10\n")
	if err := l.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := a.Limits(); got.LabelNameLength != 10 || got.RequestRate != DefaultLimits().RequestRate {
		t.Errorf("after reload: %+v", got)
	}
	write("default:\n  head_series: -5\n")
	if err := l.Reload(); err == nil || !strings.Contains(err.Error(), "head_series must not be negative") {
		t.Errorf("reload of a bad file: %v", err)
	}
	if a.Limits().LabelNameLength != 10 {
		t.Errorf("a bad file changed the limits in force: %+v", a.Limits())
	}

	a.Refuse(LabelNameLength, "x")
	b.Refuse(LabelNameLength, "x")
	if n := testutil.CollectAndCount(reg, "fleetpulse_hub_ingest_limited_total"); n != 3 {
		t.Fatalf("%d series of limited_total, want 3 (a: request_rate, label_name_length; b: label_name_length)", n)
	}
	l.Forget("a")
	if n := testutil.CollectAndCount(reg, "fleetpulse_hub_ingest_limited_total"); n != 1 {
		t.Errorf("after Forget(a): %d series of limited_total, want b's only", n)
	}
}

func TestHeadSeries(t *testing.T) {
	t.Parallel()
	var inHead atomic.Int64
	inHead.Store(90)
	reads := atomic.Int64{}
	l, err := New(Options{HeadSeries: func(_ context.Context, cluster string) (int, error) {
		reads.Add(1)
		return int(inHead.Load()), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Default.HeadSeries = 100
	l.Apply(cfg)
	c := l.For(context.Background(), "a")
	if c.HeadSeriesCount() != 90 || reads.Load() != 1 {
		t.Fatalf("a new cluster's count is %d after %d reads, want the head's 90 after one", c.HeadSeriesCount(), reads.Load())
	}
	if !c.MayCreate(10) || c.MayCreate(11) {
		t.Errorf("MayCreate: 10 more must fit a limit of 100, 11 not")
	}
	c.Created(10)
	if r := c.AllowCreate(context.Background(), 1); r == nil || r.Status != http.StatusTooManyRequests || !strings.Contains(r.Error(), "head_series limit of 100") {
		t.Errorf("one more series: %v, want 429 naming head_series and its value", r)
	}
	if r := c.AllowCreate(context.Background(), 0); r != nil {
		t.Errorf("no new series: %v", r)
	}
}
