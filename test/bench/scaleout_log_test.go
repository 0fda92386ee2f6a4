package bench

import (
	"fmt"
	"os"
	"time"
)

// progressf writes one line of BenchmarkScaleOut's progress to standard
// error as it happens. testing keeps a benchmark's b.Log output until the
// benchmark ends and then trims it to ten lines, which loses the takeover
// and the last phase of an hour-long run, or all of it on a timeout.
func progressf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scale-out %s: %s\n", time.Now().UTC().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}
