package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/index"
	"github.com/prometheus/prometheus/util/notifications"
	promapi "github.com/prometheus/prometheus/web/api/v1"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

// The API's retrievers of what Prometheus has and the hub has not: the hub
// scrapes nothing (clusters remote-write), so its scrape pools, targets
// and targets' metadata are empty lists.

type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return nil }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return nil }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePoolConfig(pool string) (*config.ScrapeConfig, error) {
	// Answered 400 by the API.
	return nil, fmt.Errorf("scrape pool %q: the hub has no scrape pools, clusters remote-write their series", pool)
}

// noAlertmanagers serves /alertmanagers when the hub sends alerts nowhere.
type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

// TSDBStatus is what /status/tsdb, /status/tsdb/blocks and
// /status/walreplay read of the store (metricstore.Store).
type TSDBStatus interface {
	HeadStats(statsByLabelName string, limit int) (*tsdb.Stats, error)
	BlockMetas() ([]tsdb.BlockMeta, error)
	WALReplayStatus() (tsdb.WALReplayStatus, error)
}

// tsdbAdmin serves the API's TSDB statistics from a TSDBStatus. Its admin
// operations are never called: the API is built with them disabled, and
// the handler answers their routes itself.
type tsdbAdmin struct{ TSDBStatus }

var errNoAdmin = errors.New("the hub does not serve Prometheus's TSDB admin APIs")

func (t tsdbAdmin) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	return t.HeadStats(statsByLabelName, limit)
}
func (tsdbAdmin) CleanTombstones() error                                         { return errNoAdmin }
func (tsdbAdmin) Delete(context.Context, int64, int64, ...*labels.Matcher) error { return errNoAdmin }
func (tsdbAdmin) Snapshot(string, bool) error                                    { return errNoAdmin }

// noTSDB stands for a store that was not given: an empty head.
type noTSDB struct{}

func (noTSDB) HeadStats(string, int) (*tsdb.Stats, error) {
	return &tsdb.Stats{MinTime: math.MaxInt64, MaxTime: math.MinInt64, IndexPostingStats: &index.PostingsStats{}}, nil
}
func (noTSDB) BlockMetas() ([]tsdb.BlockMeta, error)          { return []tsdb.BlockMeta{}, nil }
func (noTSDB) WALReplayStatus() (tsdb.WALReplayStatus, error) { return tsdb.WALReplayStatus{}, nil }

// noExemplars stands for a store that was not given: no exemplars.
type noExemplars struct{}

func (noExemplars) ExemplarQuerier(context.Context) (storage.ExemplarQuerier, error) {
	return noExemplars{}, nil
}
func (noExemplars) Select(int64, int64, ...[]*labels.Matcher) ([]exemplar.QueryResult, error) {
	return []exemplar.QueryResult{}, nil
}

// headChunksName is the gauge /status/tsdb reads the head's chunks from.
const headChunksName = "prometheus_tsdb_head_chunks"

// headChunks is the gatherer /status/tsdb reads: Prometheus's gauge of the
// head's chunks, summed over every gauge of that name the hub's registry
// holds under a prefix (the shards', "fleetpulse_hub_" and a tenant label).
type headChunks struct{ g prometheus.Gatherer }

func (h headChunks) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := h.g.Gather()
	if err != nil {
		return nil, err
	}
	var sum float64
	for _, mf := range mfs {
		if !strings.HasSuffix(mf.GetName(), headChunksName) {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetGauge().GetValue()
		}
	}
	return []*dto.MetricFamily{{
		Name:   proto.String(headChunksName),
		Type:   dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{Gauge: &dto.Gauge{Value: proto.Float64(sum)}}},
	}}, nil
}

// runtimeInfo serves /status/runtimeinfo as Prometheus fills it, but for
// what the hub has not: configuration reloads (rule files reload apart) and
// TSDB corruptions it does not count.
func runtimeInfo(start time.Time, retention time.Duration) func() (promapi.RuntimeInfo, error) {
	return func() (promapi.RuntimeInfo, error) {
		info := promapi.RuntimeInfo{
			StartTime:           start,
			ServerTime:          time.Now(),
			ReloadConfigSuccess: true,
			LastConfigTime:      start,
			GoroutineCount:      runtime.NumGoroutine(),
			GOMAXPROCS:          runtime.GOMAXPROCS(0),
			GOMEMLIMIT:          debug.SetMemoryLimit(-1),
			GOGC:                os.Getenv("GOGC"),
			GODEBUG:             os.Getenv("GODEBUG"),
		}
		if retention > 0 {
			info.StorageRetention = model.Duration(retention).String()
		}
		var err error
		if info.CWD, err = os.Getwd(); err != nil {
			info.CWD = "<error retrieving current working directory>"
		}
		if info.Hostname, err = os.Hostname(); err != nil {
			info.Hostname = "<error retrieving hostname>"
		}
		return info, nil
	}
}

// The hub raises no notifications: the UI's list is empty and its live
// stream unavailable (answered 204, as Prometheus answers it then).
func noNotifications() []notifications.Notification { return []notifications.Notification{} }

func noNotificationStream() (<-chan notifications.Notification, func(), bool) {
	return nil, func() {}, false
}
