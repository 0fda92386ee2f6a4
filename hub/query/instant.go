package query

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// QueryFunc runs an instant PromQL query over the hub's own store. The
// control plane's controllers read the fleet's telemetry through it:
// registration the clusters' inventory, placement its PromQL scores.
type QueryFunc func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error)

// InstantQueryFunc runs instant queries with engine over q, as the hub's
// users' instant queries run.
func InstantQueryFunc(engine promql.QueryEngine, q storage.Queryable) QueryFunc {
	return func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		qry, err := engine.NewInstantQuery(ctx, q, nil, expr, ts)
		if err != nil {
			return nil, err // callers name the query
		}
		defer qry.Close()
		return qry.Exec(ctx).Vector()
	}
}
