package query

import (
	"context"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/features"
	promapi "github.com/prometheus/prometheus/web/api/v1"
)

// Options configure the API.
type Options struct {
	// LookbackDelta is how far back an instant query looks for a sample.
	LookbackDelta time.Duration
	// Timeout bounds one query.
	Timeout time.Duration
	// MaxSamples bounds the samples one query may load.
	MaxSamples int
	// MaxConcurrency bounds the queries run at once (users' and rules'
	// alike); more wait their turn, within their timeout. Tracker, set,
	// enforces it as Prometheus does, logging the queries in flight to a
	// file so that one that crashed the process is reported at the next
	// start.
	MaxConcurrency int
	Tracker        promql.QueryTracker
	// RemoteReadSampleLimit bounds the samples one remote read request
	// may return (0: no limit); RemoteReadConcurrency the remote reads
	// served at once.
	RemoteReadSampleLimit, RemoteReadConcurrency int
	// Rules serves /rules and /alerts; nil serves empty lists.
	Rules func(context.Context) promapi.RulesRetriever
	// Alertmanagers serves /alertmanagers (the rules' notifier); nil
	// serves an empty list.
	Alertmanagers func(context.Context) promapi.AlertmanagerRetriever
	// Metadata serves /metadata, the clusters' metric metadata; nil
	// serves none.
	Metadata MetadataSource
	// Alerts, if set, serves /alerts in place of Rules.
	Alerts AlertsSource
	// Exemplars serves /query_exemplars; nil serves none.
	Exemplars storage.ExemplarQueryable
	// TSDB serves /status/tsdb, /status/tsdb/blocks and
	// /status/walreplay; nil reads as an empty head.
	TSDB TSDBStatus
	// Retention is the store's, which /status/runtimeinfo shows.
	Retention time.Duration
	// Features are what /features lists, shared with the engine
	// (NewEngine registers PromQL's); nil lists the API's only.
	Features   features.Collector
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// DefaultOptions are Prometheus's defaults.
func DefaultOptions() Options {
	return Options{LookbackDelta: 5 * time.Minute, Timeout: 2 * time.Minute, MaxSamples: 50_000_000,
		MaxConcurrency: 20, RemoteReadSampleLimit: 50_000_000, RemoteReadConcurrency: 10}
}

// NewEngine builds the PromQL engine the API and the rules share.
func NewEngine(opts Options) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:               opts.Logger,
		Reg:                  opts.Registerer,
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.Timeout,
		LookbackDelta:        opts.LookbackDelta,
		ActiveQueryTracker:   opts.Tracker,
		FeatureRegistry:      opts.Features,
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
}

// NewHandler returns the /api/v1 handler.
func NewHandler(engine *promql.Engine, q storage.Queryable, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.Gatherer == nil {
		opts.Gatherer = prometheus.NewRegistry()
	}
	rules := opts.Rules
	if rules == nil {
		rules = func(context.Context) promapi.RulesRetriever { return noRules{} }
	}
	alertmanagers := opts.Alertmanagers
	if alertmanagers == nil {
		alertmanagers = func(context.Context) promapi.AlertmanagerRetriever { return noAlertmanagers{} }
	}
	var exemplars storage.ExemplarQueryable = noExemplars{}
	if opts.Exemplars != nil {
		exemplars = opts.Exemplars
	}
	var db TSDBStatus = noTSDB{}
	if opts.TSDB != nil {
		db = opts.TSDB
	}
	if opts.Features == nil {
		opts.Features = features.NewRegistry()
	}
	// As Prometheus's web package registers its API's.
	for name, on := range map[string]bool{"lifecycle": true, "admin": false, "remote_write_receiver": false, "otlp_write_receiver": false,
		"label_values_match": true, "query_warnings": true, "query_stats": true, "time_range_series": true, "time_range_labels": true, "exclude_alerts": true} {
		opts.Features.Set(features.API, name, on)
	}
	cfg := func() config.Config { return config.DefaultConfig }
	// Every retriever is set: the API calls them unchecked, and a nil one
	// panics its request.
	api := promapi.NewAPI(
		engine, readOnly{q}, nil, exemplars,
		func(context.Context) promapi.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) promapi.TargetRetriever { return noTargets{} },
		alertmanagers,
		cfg, map[string]string{},
		promapi.GlobalURLOptions{Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		tsdbAdmin{db}, "", false, opts.Logger, rules,
		opts.RemoteReadSampleLimit, max(opts.RemoteReadConcurrency, 1), 1<<20, // 1 MiB frames, as Prometheus
		false, nil, runtimeInfo(time.Now(), opts.Retention),
		&promapi.PrometheusVersion{
			Version: version.Version, Revision: version.Revision, Branch: version.Branch,
			BuildUser: version.BuildUser, BuildDate: version.BuildDate, GoVersion: runtime.Version(),
		},
		noNotifications, noNotificationStream, headChunks{opts.Gatherer}, opts.Registerer, nil,
		false, nil, false, false, false, false,
		opts.LookbackDelta, false, false, nil, opts.Features,
	)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	return hubRoutes(router, opts.Metadata, opts.Alerts)
}

// readOnly is the API's storage: remote read streams chunks, which it
// encodes from the samples the fleet's queryable reads.
type readOnly struct{ storage.Queryable }

func (r readOnly) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := r.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return chunkQuerier{q}, nil
}

type chunkQuerier struct{ storage.Querier }

func (c chunkQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return storage.NewSeriesSetToChunkSet(c.Querier.Select(ctx, sorted, hints, ms...))
}
