package clusteridentity

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/processor/processortest"

	"github.com/fleetpulse/fleetpulse/processors/clusteridentity/internal/metadata"
)

func TestStampsAndOverridesIdentity(t *testing.T) {
	cfg := &Config{ClusterName: "cluster-1", ClusterSet: "prod"}
	msink, lsink := new(consumertest.MetricsSink), new(consumertest.LogsSink)
	f := NewFactory()
	mp, err := f.CreateMetrics(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, msink)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := f.CreateLogs(context.Background(), processortest.NewNopSettings(metadata.Type), cfg, lsink)
	if err != nil {
		t.Fatal(err)
	}
	if err := mp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := lp.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}

	md := pmetric.NewMetrics()
	md.ResourceMetrics().AppendEmpty().Resource().Attributes().PutStr(AttrClusterName, "spoofed")
	md.ResourceMetrics().AppendEmpty()
	if err := mp.ConsumeMetrics(context.Background(), md); err != nil {
		t.Fatal(err)
	}
	ld := plog.NewLogs()
	ld.ResourceLogs().AppendEmpty().Resource().Attributes().PutStr(AttrClusterSet, "other")
	if err := lp.ConsumeLogs(context.Background(), ld); err != nil {
		t.Fatal(err)
	}

	got := msink.AllMetrics()[0].ResourceMetrics()
	for i := 0; i < got.Len(); i++ {
		attrs := got.At(i).Resource().Attributes()
		if v, _ := attrs.Get(AttrClusterName); v.Str() != "cluster-1" {
			t.Errorf("resource %d: %s = %q, want cluster-1", i, AttrClusterName, v.Str())
		}
		if v, _ := attrs.Get(AttrClusterSet); v.Str() != "prod" {
			t.Errorf("resource %d: %s = %q, want prod", i, AttrClusterSet, v.Str())
		}
	}
	lattrs := lsink.AllLogs()[0].ResourceLogs().At(0).Resource().Attributes()
	if v, _ := lattrs.Get(AttrClusterSet); v.Str() != "prod" {
		t.Errorf("logs: %s = %q, want prod", AttrClusterSet, v.Str())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, `"cluster_name" is required`},
		{Config{ClusterName: "Cluster_1"}, `"cluster_name" "Cluster_1"`},
		{Config{ClusterName: "ok", ClusterSet: "bad set"}, `"cluster_set" "bad set"`},
		{Config{ClusterName: "cluster-1", ClusterSet: "prod"}, ""},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
