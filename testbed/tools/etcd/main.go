// Command etcd runs a single-member etcd server through go.etcd.io/etcd's embed
// package, so the test bed gets etcd v3.6 from the Go module proxy instead of
// an older distribution package.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := embed.NewConfig()
	var clientURL, peerURL string
	flag.StringVar(&cfg.Dir, "data-dir", "", "directory for etcd's data (required)")
	flag.StringVar(&clientURL, "listen-client-url", "http://127.0.0.1:2379", "URL to serve clients on")
	flag.StringVar(&peerURL, "listen-peer-url", "http://127.0.0.1:2380", "URL to serve peers on")
	flag.Int64Var(&cfg.QuotaBackendBytes, "quota-backend-bytes", 2<<30, "backend size limit in bytes")
	flag.StringVar(&cfg.LogLevel, "log-level", "warn", "log level: debug, info, warn, error")
	flag.Parse()
	if cfg.Dir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	cu, err := url.Parse(clientURL)
	if err != nil {
		return fmt.Errorf("parse --listen-client-url %q: %w", clientURL, err)
	}
	pu, err := url.Parse(peerURL)
	if err != nil {
		return fmt.Errorf("parse --listen-peer-url %q: %w", peerURL, err)
	}
	cfg.Name = "testbed"
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{"stderr"}
	// The test bed's clusters are short-lived; fsync on every commit only costs time.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		return fmt.Errorf("etcd not ready after 60s")
	}
	fmt.Fprintln(os.Stderr, "etcd: ready, serving clients on", clientURL)

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case s := <-sig:
		fmt.Fprintln(os.Stderr, "etcd: stopping on", s)
		return nil
	case err := <-e.Err():
		return fmt.Errorf("etcd serve: %w", err)
	}
}
