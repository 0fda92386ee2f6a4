package k8sinventory

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/zap"
)

// inventoryScraper reads the informer caches every collection interval.
type inventoryScraper struct {
	cfg     *Config
	logger  *zap.Logger
	watcher *watcher
}

// start fails only on configuration problems (a kubeconfig that cannot be
// loaded); an unreachable apiserver is retried by the informers.
func (s *inventoryScraper) start(_ context.Context, _ component.Host) error {
	client, err := s.cfg.Client("fleetpulse-agent/k8s_inventory")
	if err != nil {
		return err
	}
	w := &watcher{client: client, resync: s.cfg.ResyncPeriod}
	if err := w.start(); err != nil {
		return err
	}
	s.watcher = w
	// Give the first scrape full caches when the apiserver answers; when it
	// does not, carry on: the informers keep retrying and scrapes say so.
	synced := w.waitForSync(s.cfg.InitialSyncTimeout)
	s.logger.Info("watching the Kubernetes API", zap.String("host", client.Host()), zap.Bool("synced", synced))
	return nil
}

func (s *inventoryScraper) shutdown(context.Context) error {
	if s.watcher != nil {
		s.watcher.stop()
	}
	return nil
}

func (s *inventoryScraper) scrape(context.Context) (pmetric.Metrics, error) {
	snap, err := s.watcher.snapshot()
	if err != nil {
		return pmetric.NewMetrics(), err
	}
	return buildMetrics(snap, s.cfg.PodMetrics, pcommon.NewTimestampFromTime(time.Now())), nil
}
