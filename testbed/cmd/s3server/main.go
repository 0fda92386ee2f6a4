// Command s3server builds (once) the test bed's S3 server, SeaweedFS's weed
// from the testbed/s3tools module, into .cache/s3server and prints its path.
// `make test` runs it first, so that the bucket tests find the binary built.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/fleetpulse/fleetpulse/testbed"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	weed, err := testbed.EnsureS3Server(ctx, testbed.S3BuildOptions{Logger: slog.Default()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(weed)
}
