package bench

import (
	"syscall"
	"testing"
)

// ensureFileLimit raises the process's open-file limit to need when it is
// lower, or fails the benchmark naming the need. A simulated cluster holds
// its own connections (its certificate is its identity): to one hub one,
// to replicas behind the in-process balancer at least four file
// descriptors (its connection to the balancer, the balancer's two ends of
// it, its connection to its owner) and more while connections turn over:
// 4,500 clusters outgrew a limit of 20,000, their calls failing with "too
// many open files".
func ensureFileLimit(b *testing.B, need uint64) {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatalf("read the open-file limit: %v", err)
	}
	if lim.Cur >= need {
		return
	}
	want := syscall.Rlimit{Cur: need, Max: max(lim.Max, need)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		b.Fatalf("the benchmark needs %d open files, the limit is %d (hard %d) and raising it failed: %v; run it under `ulimit -n %d`",
			need, lim.Cur, lim.Max, err, need)
	}
	b.Logf("open-file limit raised from %d to %d", lim.Cur, need)
}
