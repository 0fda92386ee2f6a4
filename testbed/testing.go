package testbed

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	testBinsOnce sync.Once
	testBins     *Binaries
	testBinsErr  error
)

// StartClusters starts n clusters in parallel for a test, named
// <prefix>-0 … <prefix>-(n-1), and stops them when the test ends, pass or
// fail. When the test failed, the last lines of every process log are printed.
// The binaries are built on first use if the cache has none.
func StartClusters(t testing.TB, prefix string, n int, opts ClusterOptions) []*Cluster {
	t.Helper()
	testBinsOnce.Do(func() {
		testBins, testBinsErr = EnsureBinaries(context.Background(), BuildOptions{})
	})
	if testBinsErr != nil {
		t.Fatalf("test-bed binaries: %v", testBinsErr)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	clusters := make([]*Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			o.Name = fmt.Sprintf("%s-%d", prefix, i)
			if o.Dir != "" {
				o.Dir = filepath.Join(opts.Dir, o.Name)
			}
			clusters[i], errs[i] = StartCluster(context.Background(), testBins, o)
		}()
	}
	wg.Wait()
	var started []*Cluster
	for _, c := range clusters {
		if c != nil {
			started = append(started, c)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range started {
				dumpLogs(t, c)
			}
		}
		var wg sync.WaitGroup
		for _, c := range started {
			wg.Add(1)
			go func() { defer wg.Done(); c.Stop() }()
		}
		wg.Wait()
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return clusters
}

func dumpLogs(t testing.TB, c *Cluster) {
	t.Logf("cluster %s (last lines):\n%s", c.Name, c.LogTails(20))
}

// LogTails returns the last lines of every process's log, each under its
// process's name, to explain a failure.
func (c *Cluster) LogTails(lines int) string {
	var b strings.Builder
	for _, p := range c.procs {
		fmt.Fprintf(&b, "--- %s\n%s\n", p.name, p.logTail(lines))
	}
	return b.String()
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(b))
	return len(b), nil
}
