package metadata

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/stretchr/testify/require"
)

func fam(name string, typ model.MetricType, help, unit string) Family {
	return Family{Name: name, Metadata: metadata.Metadata{Type: typ, Help: help, Unit: unit}}
}

func md(typ model.MetricType, help, unit string) metadata.Metadata {
	return metadata.Metadata{Type: typ, Help: help, Unit: unit}
}

func newStore(t *testing.T, l Limits) (*Store, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s, err := New(l, reg)
	require.NoError(t, err)
	return s, reg
}

func TestQueryMergesClusters(t *testing.T) {
	s, reg := newStore(t, DefaultLimits())
	s.Update("a", []Family{
		fam("up", model.MetricTypeGauge, "Target up.", ""),
		fam("http_requests_total", model.MetricTypeCounter, "Requests.", ""),
		fam("no_metadata", model.MetricTypeUnknown, "", ""), // carries nothing: skipped
		fam("", model.MetricTypeGauge, "no name", ""),       // skipped
	})
	s.Update("b", []Family{
		fam("up", model.MetricTypeGauge, "Target up.", ""), // shared with a
		fam("http_requests_total", model.MetricTypeCounter, "Requests served.", ""),
		fam("node_memory_bytes", model.MetricTypeGauge, "Memory.", "bytes"),
	})
	require.Equal(t, 5.0, testutil.ToFloat64(s.entries))

	for _, tc := range []struct {
		name                  string
		metric                string
		limit, limitPerMetric int
		want                  map[string][]metadata.Metadata
	}{
		{name: "all", limit: -1, want: map[string][]metadata.Metadata{
			"up":                  {md(model.MetricTypeGauge, "Target up.", "")},
			"http_requests_total": {md(model.MetricTypeCounter, "Requests served.", ""), md(model.MetricTypeCounter, "Requests.", "")},
			"node_memory_bytes":   {md(model.MetricTypeGauge, "Memory.", "bytes")},
		}},
		{name: "one metric", metric: "http_requests_total", limit: -1, want: map[string][]metadata.Metadata{
			"http_requests_total": {md(model.MetricTypeCounter, "Requests served.", ""), md(model.MetricTypeCounter, "Requests.", "")},
		}},
		{name: "unknown metric", metric: "nope", limit: -1, want: map[string][]metadata.Metadata{}},
		{name: "limit, in name order", limit: 2, want: map[string][]metadata.Metadata{
			"http_requests_total": {md(model.MetricTypeCounter, "Requests served.", ""), md(model.MetricTypeCounter, "Requests.", "")},
			"node_memory_bytes":   {md(model.MetricTypeGauge, "Memory.", "bytes")},
		}},
		{name: "limit 0 returns none, as Prometheus", limit: 0, want: map[string][]metadata.Metadata{}},
		{name: "limit per metric", metric: "http_requests_total", limit: -1, limitPerMetric: 1, want: map[string][]metadata.Metadata{
			"http_requests_total": {md(model.MetricTypeCounter, "Requests served.", "")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, s.Query(tc.metric, tc.limit, tc.limitPerMetric))
		})
	}

	// A cluster's new metadata replaces its old; the old stays while
	// another cluster holds it.
	s.Update("b", []Family{fam("up", model.MetricTypeGauge, "Up, renamed.", "")})
	require.Equal(t, []metadata.Metadata{md(model.MetricTypeGauge, "Target up.", ""), md(model.MetricTypeGauge, "Up, renamed.", "")},
		s.Query("up", -1, 0)["up"])
	s.Update("a", []Family{fam("up", model.MetricTypeGauge, "Up, renamed.", "")})
	require.Equal(t, []metadata.Metadata{md(model.MetricTypeGauge, "Up, renamed.", "")}, s.Query("up", -1, 0)["up"])

	// A forgotten cluster's metadata goes; what another holds stays.
	s.Forget("b")
	require.Equal(t, map[string][]metadata.Metadata{
		"up":                  {md(model.MetricTypeGauge, "Up, renamed.", "")},
		"http_requests_total": {md(model.MetricTypeCounter, "Requests.", "")},
	}, s.Query("", -1, 0))
	require.Empty(t, s.Cluster("b"))
	s.Forget("a")
	require.Empty(t, s.Query("", -1, 0))
	require.Empty(t, s.families, "interned metadata is freed with the last cluster holding it")
	require.Equal(t, 0.0, testutil.ToFloat64(s.entries))
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fleetpulse_hub_metadata_families Metric families the hub holds metadata for, counted once per cluster that sent it.
# TYPE fleetpulse_hub_metadata_families gauge
fleetpulse_hub_metadata_families 0
`), "fleetpulse_hub_metadata_families"))
}

func TestLimits(t *testing.T) {
	s, reg := newStore(t, Limits{MaxFamiliesPerCluster: 2, MaxHelpBytes: 8})
	s.Update("a", []Family{
		fam("a1", model.MetricTypeGauge, "short", ""),
		fam("a2", model.MetricTypeGauge, "héhéhéhé", ""), // 12 bytes: cut at a character boundary
		fam("a3", model.MetricTypeGauge, "over the family limit", ""),
		fam("a_name_longer_than_8", model.MetricTypeUnknown, "", ""), // no metadata: not counted
		fam("a_name_longer_than_8", model.MetricTypeGauge, "x", ""),  // dropped: name too long
		fam("a1", model.MetricTypeCounter, "short", "seconds_long"),  // dropped: unit too long
	})
	require.Equal(t, []Family{
		fam("a1", model.MetricTypeGauge, "short", ""),
		fam("a2", model.MetricTypeGauge, "héhéh", ""),
	}, s.Cluster("a"))
	// Existing families are still updated at the limit; another cluster
	// has its own.
	s.Update("a", []Family{fam("a1", model.MetricTypeCounter, "now a counter", "")})
	s.Update("b", []Family{fam("a3", model.MetricTypeGauge, "b's", "")})
	require.Equal(t, model.MetricTypeCounter, s.Cluster("a")[0].Type)
	require.Len(t, s.Cluster("b"), 1)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP fleetpulse_hub_metadata_dropped_total Metric families' metadata dropped, by the limit that dropped it.
# TYPE fleetpulse_hub_metadata_dropped_total counter
fleetpulse_hub_metadata_dropped_total{limit="max_families_per_cluster"} 1
fleetpulse_hub_metadata_dropped_total{limit="max_help_bytes"} 2
# HELP fleetpulse_hub_metadata_help_truncated_total Help texts cut at the metadata help length limit.
# TYPE fleetpulse_hub_metadata_help_truncated_total counter
fleetpulse_hub_metadata_help_truncated_total 2
`), "fleetpulse_hub_metadata_dropped_total", "fleetpulse_hub_metadata_help_truncated_total"))
}

func TestUpdateCopiesWhatItKeeps(t *testing.T) {
	s, _ := newStore(t, DefaultLimits())
	buf := []byte("reused_total A help.")
	f := Family{Name: string(buf[:12]), Metadata: metadata.Metadata{Type: model.MetricTypeCounter, Help: string(buf[13:])}}
	s.Update("a", []Family{f})
	copy(buf, "xxxxxxxxxxxxxxxxxxxx")
	require.Equal(t, []Family{fam("reused_total", model.MetricTypeCounter, "A help.", "")}, s.Cluster("a"))
	// An unknown type string is held as unknown.
	s.Update("a", []Family{fam("odd", "weird", "help", "")})
	require.Equal(t, model.MetricTypeUnknown, s.Query("odd", -1, 0)["odd"][0].Type)
}

func TestValidate(t *testing.T) {
	require.NoError(t, DefaultLimits().Validate())
	err := Limits{}.Validate()
	require.ErrorContains(t, err, "metadata families per cluster 0")
	require.ErrorContains(t, err, "metadata help length 0")
	_, err = New(Limits{}, nil)
	require.Error(t, err)
}

func BenchmarkUpdateUnchanged(b *testing.B) {
	s, _ := New(DefaultLimits(), nil)
	fams := make([]Family, 500)
	for i := range fams {
		fams[i] = fam("metric_"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('a'+i/26)), model.MetricTypeGauge, "Some help text of usual length.", "")
	}
	s.Update("a", fams)
	b.ReportAllocs()
	for b.Loop() {
		s.Update("a", fams)
	}
}
