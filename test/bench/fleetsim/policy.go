package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Verdict decides a simulated cluster's verdict on a policy replica; the
// simulator evaluates nothing.
type Verdict func(cluster string, p agentapi.PolicyItem) fleetv1.ComplianceState

// AllCompliant is the Verdict of a fleet that complies everywhere.
func AllCompliant(string, agentapi.PolicyItem) fleetv1.ComplianceState { return fleetv1.Compliant }

// PolicyStats count the policy agents' calls.
type PolicyStats struct {
	// Polls answered (a list or 304), Reports accepted; Errors of either.
	Polls, Reports, Errors int64
	// ReportLatency is the hub's answer time to a status report.
	ReportLatency Percentiles
}

type policyCounters struct {
	polls, reports, errors atomic.Int64
	reportLatency          durations
}

// RunPolicies runs a policy agent for every registered cluster until ctx
// ends, as the agent's policy extension talks to the hub: each long-polls
// its policy replicas (poll is the hub's wait before a 304) on a connection
// of its own, and reports a status for every replica whose generation it
// has not reported yet. Failed calls are retried after a second.
func (f *Fleet) RunPolicies(ctx context.Context, poll time.Duration, verdict Verdict) {
	var wg sync.WaitGroup
	for _, c := range f.clusters {
		c.mu.Lock()
		pair := c.pair
		c.mu.Unlock()
		if pair == nil {
			continue
		}
		client := f.mtlsClient(*pair)
		client.Timeout = 0 // each call has its own deadline
		wg.Go(func() {
			defer client.CloseIdleConnections()
			f.policyAgent(ctx, c, client, poll, verdict)
		})
	}
	wg.Wait()
}

// PolicyStats returns the policy agents' counts so far.
func (f *Fleet) PolicyStats() PolicyStats {
	s := &f.policy
	return PolicyStats{Polls: s.polls.Load(), Reports: s.reports.Load(), Errors: s.errors.Load(), ReportLatency: s.reportLatency.percentiles()}
}

func (f *Fleet) policyAgent(ctx context.Context, c *cluster, client *http.Client, poll time.Duration, verdict Verdict) {
	rv := ""
	reported := map[string]int64{} // replica UID → generation reported
	for ctx.Err() == nil {
		list, err := f.listPolicies(ctx, client, rv, poll)
		if err == nil && list != nil {
			rv = list.ResourceVersion
			seen := map[string]bool{}
			for _, p := range list.Items {
				seen[p.UID] = true
				if p.Deleting || reported[p.UID] == p.Generation {
					continue
				}
				if err = f.reportPolicy(ctx, client, c.name, p, verdict(c.name, p)); err != nil {
					rv = "" // list again, and report what is left
					break
				}
				reported[p.UID] = p.Generation
			}
			for uid := range reported {
				if !seen[uid] && err == nil {
					delete(reported, uid)
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			f.policy.errors.Add(1)
			f.warn(&f.policy.errors, "policy call failed", "cluster", c.name, "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// listPolicies long-polls the replicas; nil, nil is a 304.
func (f *Fleet) listPolicies(ctx context.Context, client *http.Client, rv string, poll time.Duration) (*agentapi.PolicyList, error) {
	q := url.Values{agentapi.ParamTimeout: {poll.String()}}
	if rv != "" {
		q.Set(agentapi.ParamResourceVersion, rv)
	}
	ctx, cancel := context.WithTimeout(ctx, poll+f.cfg.RequestTimeout)
	defer cancel()
	raw, code, err := f.call(ctx, client, http.MethodGet, agentapi.PathPolicies+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	f.policy.polls.Add(1)
	if code == http.StatusNotModified {
		return nil, nil
	}
	var out agentapi.PolicyList
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("list policies: decode the answer: %w", err)
	}
	return &out, nil
}

// reportPolicy reports a status as an agent's evaluation makes it: the
// verdict on the replica and on each template, the generation evaluated
// and the history's first entry.
func (f *Fleet) reportPolicy(ctx context.Context, client *http.Client, cluster string, p agentapi.PolicyItem, v fleetv1.ComplianceState) error {
	now := metav1.Now()
	st := fleetv1.PolicyStatus{Compliant: v, LastEvaluated: &now, ObservedGeneration: p.Generation}
	if p.Status != nil {
		st.History = p.Status.History
	}
	if len(st.History) == 0 || st.History[0].Compliant != v {
		msg := fmt.Sprintf("simulated %s on %s", v, cluster)
		st.History = append([]fleetv1.ComplianceEvent{{Time: now, Compliant: v, Message: msg}}, st.History...)
	}
	for i := range p.Spec.ObjectTemplates {
		st.Templates = append(st.Templates, fleetv1.TemplateStatus{Index: int32(i), Compliant: v, Message: "simulated"})
	}
	body, err := json.Marshal(agentapi.PolicyStatusRequest{UID: p.UID, Status: st})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	sent := time.Now()
	if _, _, err := f.call(ctx, client, http.MethodPut, agentapi.PolicyStatusPath(p.Name), body); err != nil {
		return fmt.Errorf("report status of policy %s: %w", p.Name, err)
	}
	f.policy.reportLatency.add(time.Since(sent))
	f.policy.reports.Add(1)
	return nil
}

// call sends one request; an answer other than 2xx or 304 is a
// *statusError.
func (f *Fleet) call(ctx context.Context, client *http.Client, method, path string, body []byte) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, f.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusNotModified {
		return nil, resp.StatusCode, &statusError{code: resp.StatusCode, msg: strings.TrimSpace(string(raw))}
	}
	return raw, resp.StatusCode, nil
}
