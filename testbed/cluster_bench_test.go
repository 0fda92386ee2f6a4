package testbed

import (
	"context"
	"log/slog"
	"testing"
)

// BenchmarkClusterStart measures a warm start of one cluster with 3 kwok
// nodes (binaries cached): from nothing to API ready, nodes Ready and the
// default ServiceAccount present. It reports the resident memory of the
// cluster's processes right after start, in total and per process.
func BenchmarkClusterStart(b *testing.B) {
	bins, err := EnsureBinaries(context.Background(), BuildOptions{})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	rss := map[string]int64{}
	for i := 0; b.Loop(); i++ {
		c, err := StartCluster(context.Background(), bins, ClusterOptions{Name: "bench", Nodes: 3, Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		r, err := c.ProcessRSS()
		c.Stop()
		if err != nil {
			b.Fatal(err)
		}
		for k, v := range r {
			rss[k] += v
		}
		b.StartTimer()
	}
	var total int64
	for k, v := range rss {
		b.ReportMetric(float64(v)/float64(b.N)/(1<<20), k+"-MiB")
		total += v
	}
	b.ReportMetric(float64(total)/float64(b.N)/(1<<20), "rss-MiB")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/start")
}
