package query

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/route"
	"github.com/prometheus/common/version"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
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
	// Rules serves /rules and /alerts; nil serves empty lists.
	Rules      func(context.Context) promapi.RulesRetriever
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
}

// DefaultOptions are Prometheus's defaults.
func DefaultOptions() Options {
	return Options{LookbackDelta: 5 * time.Minute, Timeout: 2 * time.Minute, MaxSamples: 50_000_000}
}

// NewEngine builds the PromQL engine the API and the rules share.
func NewEngine(opts Options) *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{
		Logger:               opts.Logger,
		Reg:                  opts.Registerer,
		MaxSamples:           opts.MaxSamples,
		Timeout:              opts.Timeout,
		LookbackDelta:        opts.LookbackDelta,
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
	cfg := func() config.Config { return config.DefaultConfig }
	api := promapi.NewAPI(
		engine, readOnly{q}, nil, nil,
		nil, nil, nil, // scrape pools, targets, alertmanagers: the hub scrapes nothing
		cfg, map[string]string{},
		promapi.GlobalURLOptions{Scheme: "http"},
		func(f http.HandlerFunc) http.HandlerFunc { return f },
		nil, "", false, opts.Logger, rules,
		0, 1, 1<<20, // remote read: no sample limit, one at a time, 1 MiB frames
		false, nil, nil,
		&promapi.PrometheusVersion{
			Version: version.Version, Revision: version.Revision, Branch: version.Branch,
			BuildUser: version.BuildUser, BuildDate: version.BuildDate, GoVersion: runtime.Version(),
		},
		nil, nil, opts.Gatherer, opts.Registerer, nil,
		false, nil, false, false, false, false,
		opts.LookbackDelta, false, false, nil, nil,
	)
	router := route.New()
	api.Register(router.WithPrefix("/api/v1"))
	return router
}

// readOnly serves samples only: the API asks for a chunk querier too, which
// only remote read uses, and the hub serves none.
type readOnly struct{ storage.Queryable }

func (readOnly) ChunkQuerier(int64, int64) (storage.ChunkQuerier, error) {
	return nil, errors.New("chunk queries are not served")
}
