package workset

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// clusterLabel is the label the hub's store gives every cluster's series.
const clusterLabel = "cluster"

// errNoTelemetry: the hub runs without a store to query.
var errNoTelemetry = errors.New("the hub has no telemetry to query")

// parseGates parses every ref's gates and checks its sizes; the problems
// found keep stages from starting.
func parseGates(refs []refPlan) (map[string][]*gate, string) {
	out := map[string][]*gate{}
	var problems []string
	for _, ref := range refs {
		s := ref.strategy
		for _, err := range []error{validSize("maxConcurrency", s.MaxConcurrency), validSize("maxFailures", s.MaxFailures)} {
			if err != nil {
				problems = append(problems, fmt.Sprintf("placement %s: %v", ref.name, err))
			}
		}
		seen := map[string]bool{}
		for _, g := range s.Gates {
			pg, err := parseGate(g)
			switch {
			case err != nil:
				problems = append(problems, fmt.Sprintf("placement %s: %v", ref.name, err))
			case seen[g.Name]:
				problems = append(problems, fmt.Sprintf("placement %s: gate %q twice", ref.name, g.Name))
			default:
				out[ref.name] = append(out[ref.name], pg)
			}
			seen[g.Name] = true
		}
	}
	return out, strings.Join(problems, "; ")
}

// measure runs the due gates' queries. A query that cannot be filled in,
// fails or times out is a result with its error: inconclusive, never a
// pass.
func (r *reconciler) measure(ctx context.Context, runs []gateRun) []gateResult {
	out := make([]gateResult, 0, len(runs))
	for _, run := range runs {
		now := r.cfg.Now()
		res := gateResult{stage: run.stage, gate: run.gate.spec.Name, at: now}
		res.query, res.err = run.gate.expand(run.vars)
		if res.err == nil {
			res.values, res.all, res.err = r.instant(ctx, res.query, now)
		}
		out = append(out, res)
	}
	return out
}

// instant runs one gate query and splits its samples by cluster.
func (r *reconciler) instant(ctx context.Context, expr string, at time.Time) (map[string]float64, *float64, error) {
	if r.query == nil {
		return nil, nil, errNoTelemetry
	}
	qctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
	defer cancel()
	start := time.Now()
	vec, err := r.query(qctx, expr, at)
	r.metrics.queryDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("query: %w", err)
	}
	values := map[string]float64{}
	var all *float64
	for _, s := range vec {
		if c := s.Metric.Get(clusterLabel); c != "" {
			if _, dup := values[c]; dup {
				return nil, nil, fmt.Errorf("query returned several samples for cluster %q; aggregate by cluster", c)
			}
			values[c] = s.F
			continue
		}
		if all != nil {
			return nil, nil, errors.New("query returned several samples without a cluster label; aggregate them to one")
		}
		v := s.F
		all = &v
	}
	return values, all, nil
}

// approvals finds, by stage, who approved a stage of the revision's
// rollout.
func (r *reconciler) approvals(ctx context.Context, mws *fleetv1.ManifestWorkSet, revision int64) (map[int32]string, error) {
	var list fleetv1.RolloutApprovalList
	if err := r.client.List(ctx, &list, client.InNamespace(mws.Namespace)); err != nil {
		return nil, fmt.Errorf("list rollout approvals: %w", err)
	}
	out := map[int32]string{}
	for _, a := range list.Items {
		if a.Spec.ManifestWorkSet != mws.Name || a.Spec.Revision != revision || a.DeletionTimestamp != nil {
			continue
		}
		if _, ok := out[a.Spec.Stage]; !ok {
			out[a.Spec.Stage] = fmt.Sprintf("%s (RolloutApproval %s)", a.Spec.Approver, a.Name)
		}
	}
	return out, nil
}
