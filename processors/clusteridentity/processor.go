package clusteridentity

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

type identity struct{ cfg *Config }

func (p identity) stamp(attrs pcommon.Map) {
	attrs.PutStr(AttrClusterName, p.cfg.ClusterName)
	if p.cfg.ClusterSet != "" {
		attrs.PutStr(AttrClusterSet, p.cfg.ClusterSet)
	} else {
		attrs.Remove(AttrClusterSet)
	}
}

func (p identity) processMetrics(_ context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	for i := 0; i < md.ResourceMetrics().Len(); i++ {
		p.stamp(md.ResourceMetrics().At(i).Resource().Attributes())
	}
	return md, nil
}

func (p identity) processLogs(_ context.Context, ld plog.Logs) (plog.Logs, error) {
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		p.stamp(ld.ResourceLogs().At(i).Resource().Attributes())
	}
	return ld, nil
}
