package alerting

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/rules"
	thanosrules "github.com/thanos-io/thanos/pkg/rules"
	"github.com/thanos-io/thanos/pkg/rules/rulespb"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb"
)

// Rules serves Thanos's Rules gRPC API over the groups this replica
// evaluates (see Local): the replicas that lead the controllers read the
// fleet's alerts from each other through it.
func (a *Alerting) Rules(req *rulespb.RulesRequest, srv rulespb.Rules_RulesServer) error {
	for _, g := range a.evaluatedGroups() {
		pg := groupProto(g, req.Type)
		if len(pg.Rules) == 0 {
			continue
		}
		if err := srv.Send(rulespb.NewRuleGroupRulesResponse(pg)); err != nil {
			return err
		}
	}
	return nil
}

// groupProto is g in the Rules API's shape, with the rules of type t.
func groupProto(g *rules.Group, t rulespb.RulesRequest_Type) *rulespb.RuleGroup {
	pg := &rulespb.RuleGroup{Name: g.Name(), File: g.File(), Interval: g.Interval().Seconds(), Limit: int64(g.Limit()),
		LastEvaluation: g.GetLastEvaluation().UTC(), EvaluationDurationSeconds: g.GetEvaluationTime().Seconds()}
	for _, r := range g.Rules() {
		lastError := ""
		if err := r.LastError(); err != nil {
			lastError = err.Error()
		}
		zl := labelpb.ZLabelSet{Labels: labelpb.ZLabelsFromPromLabels(r.Labels())}
		switch rule := r.(type) {
		case *rules.AlertingRule:
			if t == rulespb.RulesRequest_RECORD {
				continue
			}
			pg.Rules = append(pg.Rules, rulespb.NewAlertingRule(&rulespb.Alert{
				State: rulespb.AlertState(rule.State()), Name: rule.Name(), Query: rule.Query().String(),
				DurationSeconds: rule.HoldDuration().Seconds(), KeepFiringForSeconds: rule.KeepFiringFor().Seconds(),
				Labels: zl, Annotations: labelpb.ZLabelSet{Labels: labelpb.ZLabelsFromPromLabels(rule.Annotations())},
				Alerts: thanosrules.ActiveAlertsToProto(storepb.PartialResponseStrategy_ABORT, rule),
				Health: string(rule.Health()), LastError: lastError,
				EvaluationDurationSeconds: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp().UTC(),
			}))
		case *rules.RecordingRule:
			if t == rulespb.RulesRequest_ALERT {
				continue
			}
			pg.Rules = append(pg.Rules, rulespb.NewRecordingRule(&rulespb.RecordingRule{
				Name: rule.Name(), Query: rule.Query().String(), Labels: zl, Health: string(rule.Health()), LastError: lastError,
				EvaluationDurationSeconds: rule.GetEvaluationDuration().Seconds(), LastEvaluation: rule.GetEvaluationTimestamp().UTC(),
			}))
		}
	}
	return pg
}

// PeerAlerts reads the pending and firing alerts a peer evaluates, over
// its Rules API.
func PeerAlerts(ctx context.Context, c rulespb.RulesClient) ([]Alert, error) {
	stream, err := c.Rules(ctx, &rulespb.RulesRequest{Type: rulespb.RulesRequest_ALERT})
	if err != nil {
		return nil, err
	}
	var out []Alert
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if w := resp.GetWarning(); w != "" {
			return nil, errors.New(w)
		}
		g := resp.GetGroup()
		if g == nil {
			continue
		}
		for _, r := range g.Rules {
			ar := r.GetAlert()
			if ar == nil {
				continue
			}
			for _, in := range ar.Alerts {
				a, err := alertFromProto(ar.Name, in)
				if err != nil {
					return nil, fmt.Errorf("alert %s of group %s: %w", ar.Name, g.Name, err)
				}
				out = append(out, a)
			}
		}
	}
}

func alertFromProto(name string, in *rulespb.AlertInstance) (Alert, error) {
	v, err := strconv.ParseFloat(in.Value, 64)
	if err != nil {
		return Alert{}, fmt.Errorf("value %q: %w", in.Value, err)
	}
	a := Alert{Name: name, Labels: in.Labels.PromLabels().Map(), Annotations: in.Annotations.PromLabels().Map(), Value: v,
		Firing: in.State == rulespb.AlertState_FIRING}
	if in.ActiveAt != nil {
		a.ActiveAt = *in.ActiveAt
	}
	return a, nil
}

// mergeAlerts is the union of several replicas' alerts, each alert once:
// firing over pending, then the earliest active.
func mergeAlerts(sets ...[]Alert) []Alert {
	byKey := map[string]int{}
	var (
		out  []Alert
		keys []string
	)
	for _, set := range sets {
		for _, a := range set {
			key := a.Name + labels.FromMap(a.Labels).String()
			i, ok := byKey[key]
			if !ok {
				byKey[key] = len(out)
				out, keys = append(out, a), append(keys, key)
				continue
			}
			if a.Firing && !out[i].Firing || a.Firing == out[i].Firing && a.ActiveAt.Before(out[i].ActiveAt) {
				out[i] = a
			}
		}
	}
	sort.Sort(byAlertKey{alerts: out, keys: keys})
	return out
}

type byAlertKey struct {
	alerts []Alert
	keys   []string
}

func (b byAlertKey) Len() int           { return len(b.alerts) }
func (b byAlertKey) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b byAlertKey) Swap(i, j int) {
	b.alerts[i], b.alerts[j] = b.alerts[j], b.alerts[i]
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
}
