package main

import (
	"os"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// runtimeOptions are the Go runtime's garbage-collector settings. The agent
// sets its own defaults so that its footprint does not depend on the
// environment it is started from; GOGC and GOMEMLIMIT, when set, win over the
// defaults, and a flag given explicitly wins over both.
type runtimeOptions struct {
	gcPercent      int
	memoryLimitMiB int64

	gcPercentFlag, memoryLimitFlag *pflag.Flag
}

// Defaults. The agent's live heap is small (7 MiB for 100 nodes and 3,000
// pods), so GOGC 50 instead of 100 trims about 4 MiB of resident memory for a
// tenth of a percent of a core. The soft limit matches the built-in
// pipeline's memory_limiter (limit 128 MiB less its 32 MiB spike allowance):
// the collector collects harder before the limiter starts refusing data.
const (
	defaultGCPercent      = 50
	defaultMemoryLimitMiB = 96
)

func addRuntimeFlags(f *pflag.FlagSet, r *runtimeOptions) {
	r.gcPercent, r.memoryLimitMiB = defaultGCPercent, defaultMemoryLimitMiB
	f.IntVar(&r.gcPercent, "go-gc-percent", r.gcPercent, "Go garbage-collector target percentage (GOGC); GOGC, when set, wins over the default; negative turns the collector off")
	f.Int64Var(&r.memoryLimitMiB, "go-memory-limit-mib", r.memoryLimitMiB, "Go runtime's soft memory limit in MiB (GOMEMLIMIT); GOMEMLIMIT, when set, wins over the default; 0 means no limit")
	r.gcPercentFlag, r.memoryLimitFlag = f.Lookup("go-gc-percent"), f.Lookup("go-memory-limit-mib")
}

// apply sets the Go runtime's collector: an explicit flag first, then the
// environment (which the runtime has read already), then the defaults.
func (r *runtimeOptions) apply() {
	if r.gcPercentFlag.Changed || os.Getenv("GOGC") == "" {
		debug.SetGCPercent(r.gcPercent)
	}
	if r.memoryLimitFlag.Changed || os.Getenv("GOMEMLIMIT") == "" {
		limit := r.memoryLimitMiB << 20
		if r.memoryLimitMiB <= 0 {
			limit = 1<<63 - 1 // math.MaxInt64: no limit
		}
		debug.SetMemoryLimit(limit)
	}
}
