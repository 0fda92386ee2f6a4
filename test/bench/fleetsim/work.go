package fleetsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// WorkStats count the work appliers' calls.
type WorkStats struct {
	// Polls answered (a list or 304), Reports accepted, Releases (a deleted
	// work's finalizer given back); Errors of any.
	Polls, Reports, Releases, Errors int64
	// ReportLatency is the hub's answer time to a status report.
	ReportLatency Percentiles
}

type workCounters struct {
	polls, reports, releases, errors atomic.Int64
	reportLatency                    durations
}

// RunWorks runs a work applier for every registered cluster until ctx
// ends, as the agent's work extension talks to the hub: each long-polls
// GET /api/v1/works (poll is the hub's wait before a 304) on a connection
// of its own, reports every work generation it has not reported yet as
// applied and available (the simulator applies nothing), and releases the
// finalizer of a deleted work. Failed calls are retried after a second.
func (f *Fleet) RunWorks(ctx context.Context, poll time.Duration) {
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
			f.workApplier(ctx, c, client, poll)
		})
	}
	wg.Wait()
}

// WorkStats returns the work appliers' counts so far.
func (f *Fleet) WorkStats() WorkStats {
	s := &f.work
	return WorkStats{Polls: s.polls.Load(), Reports: s.reports.Load(), Releases: s.releases.Load(), Errors: s.errors.Load(),
		ReportLatency: s.reportLatency.percentiles()}
}

func (f *Fleet) workApplier(ctx context.Context, c *cluster, client *http.Client, poll time.Duration) {
	rv := ""
	reported := map[string]int64{} // work UID → generation reported
	for ctx.Err() == nil {
		list, err := f.listWorks(ctx, client, rv, poll)
		if err == nil && list != nil {
			rv = list.ResourceVersion
			err = f.applyWorks(ctx, client, list.Items, reported)
			if err != nil {
				rv = "" // list again, and report what is left
			}
		}
		if err != nil && ctx.Err() == nil {
			f.work.errors.Add(1)
			f.warn(&f.work.errors, "work call failed", "cluster", c.name, "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// applyWorks reports what a list asks for: a status for each generation
// not reported yet, a release for each deleted work.
func (f *Fleet) applyWorks(ctx context.Context, client *http.Client, items []agentapi.WorkItem, reported map[string]int64) error {
	seen := map[string]bool{}
	for _, w := range items {
		seen[w.UID] = true
		if w.Deleting {
			if err := f.releaseWork(ctx, client, w); err != nil {
				return err
			}
			continue
		}
		if reported[w.UID] == w.Generation {
			continue
		}
		if err := f.reportWork(ctx, client, w); err != nil {
			return err
		}
		reported[w.UID] = w.Generation
	}
	for uid := range reported {
		if !seen[uid] {
			delete(reported, uid)
		}
	}
	return nil
}

// listWorks long-polls the works; nil, nil is a 304.
func (f *Fleet) listWorks(ctx context.Context, client *http.Client, rv string, poll time.Duration) (*agentapi.WorkList, error) {
	q := url.Values{agentapi.ParamTimeout: {poll.String()}}
	if rv != "" {
		q.Set(agentapi.ParamResourceVersion, rv)
	}
	ctx, cancel := context.WithTimeout(ctx, poll+f.cfg.RequestTimeout)
	defer cancel()
	raw, code, err := f.call(ctx, client, http.MethodGet, agentapi.PathWorks+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("list works: %w", err)
	}
	f.work.polls.Add(1)
	if code == http.StatusNotModified {
		return nil, nil
	}
	var out agentapi.WorkList
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("list works: decode the answer: %w", err)
	}
	return &out, nil
}

// reportWork reports a work's generation as the agent does once every
// object is applied and available: Applied and Available True, Progressing
// False, Degraded False, one entry per manifest, the transition times of
// conditions whose status stays kept from the status the hub holds.
func (f *Fleet) reportWork(ctx context.Context, client *http.Client, w agentapi.WorkItem) error {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	var prev []metav1.Condition
	if w.Status != nil {
		prev = w.Status.Conditions
	}
	cond := func(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
		c := metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: w.Generation, LastTransitionTime: now}
		for _, p := range prev {
			if p.Type == typ && p.Status == status {
				c.LastTransitionTime = p.LastTransitionTime
			}
		}
		return c
	}
	st := fleetv1.ManifestWorkStatus{ObservedGeneration: w.Generation, Conditions: []metav1.Condition{
		cond(fleetv1.WorkApplied, metav1.ConditionTrue, "Applied", "simulated: every object applied"),
		cond(fleetv1.WorkAvailable, metav1.ConditionTrue, "Available", "simulated: every object available"),
		cond(fleetv1.WorkProgressing, metav1.ConditionFalse, "Completed", "simulated"),
		cond(fleetv1.WorkDegraded, metav1.ConditionFalse, "AsExpected", "simulated"),
	}}
	for i, m := range w.Spec.Workload.Manifests {
		st.Manifests = append(st.Manifests, fleetv1.ManifestCondition{ResourceMeta: resourceMeta(int32(i), m.Raw), Conditions: []metav1.Condition{
			{Type: fleetv1.WorkApplied, Status: metav1.ConditionTrue, Reason: "Applied", ObservedGeneration: w.Generation, LastTransitionTime: now},
			{Type: fleetv1.WorkAvailable, Status: metav1.ConditionTrue, Reason: "Available", ObservedGeneration: w.Generation, LastTransitionTime: now},
		}})
	}
	body, err := json.Marshal(agentapi.WorkStatusRequest{UID: w.UID, Status: st})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	sent := time.Now()
	if _, _, err := f.call(ctx, client, http.MethodPut, agentapi.WorkStatusPath(w.Name), body); err != nil {
		return fmt.Errorf("report status of work %s: %w", w.Name, err)
	}
	f.work.reportLatency.add(time.Since(sent))
	f.work.reports.Add(1)
	return nil
}

// resourceMeta names a manifest as the agent's status does; the resource
// is the kind's lower-case plural, as discovery would mostly answer.
func resourceMeta(ordinal int32, raw []byte) fleetv1.ManifestResourceMeta {
	var obj struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Metadata   metav1.ObjectMeta `json:"metadata"`
	}
	_ = json.Unmarshal(raw, &obj)
	gv, _ := schema.ParseGroupVersion(obj.APIVersion)
	return fleetv1.ManifestResourceMeta{Ordinal: ordinal, Group: gv.Group, Version: gv.Version, Kind: obj.Kind,
		Resource: strings.ToLower(obj.Kind) + "s", Name: obj.Metadata.Name, Namespace: obj.Metadata.Namespace}
}

// releaseWork gives a deleted work's finalizer back: the simulator has
// nothing to remove.
func (f *Fleet) releaseWork(ctx context.Context, client *http.Client, w agentapi.WorkItem) error {
	ctx, cancel := context.WithTimeout(ctx, f.cfg.RequestTimeout)
	defer cancel()
	path := agentapi.WorkFinalizerPath(w.Name) + "?" + url.Values{agentapi.ParamUID: {w.UID}}.Encode()
	if _, _, err := f.call(ctx, client, http.MethodDelete, path, nil); err != nil {
		return fmt.Errorf("release work %s: %w", w.Name, err)
	}
	f.work.releases.Add(1)
	return nil
}
