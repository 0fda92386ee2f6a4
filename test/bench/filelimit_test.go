package bench

import (
	"syscall"
	"testing"
)

// ensureFileLimit raises the process's open-file limit to need when it is
// lower, or fails the benchmark naming the need. A simulated cluster holds
// its own connection (its certificate is its identity) to the hub or, with
// replicas, to its owner once a replica has redirected it; a call through
// the in-process balancer holds three more descriptors while it lasts (its
// connection to the balancer and the balancer's two ends of it).
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
