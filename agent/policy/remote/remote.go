// Package remote connects the agent's policy engine to the hub: a Hub is
// the engine's Source (a long poll of the cluster's policy replicas) and
// its StatusSink (each replica's status, and the release of a pruned one),
// over the agent's mutual-TLS client of the hub.
package remote

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/fleetpulse/fleetpulse/agent/internal/backoff"
	"github.com/fleetpulse/fleetpulse/agent/internal/health"
	"github.com/fleetpulse/fleetpulse/agent/internal/hubclient"
	"github.com/fleetpulse/fleetpulse/agent/policy"
	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

const (
	// DefaultPollTimeout is how long one list call waits for a change.
	DefaultPollTimeout = 30 * time.Second
	maxListBody        = 64 << 20
)

// Config is what a Hub needs.
type Config struct {
	// Hub is the base URL of the hub's agents port (https).
	Hub string
	// StateDir holds the credentials registration keeps.
	StateDir string
	// ClusterName is the namespace of the cluster's replicas on the hub,
	// and names the cluster in logs.
	ClusterName string
	// PollTimeout is how long one list call may wait for a change.
	PollTimeout time.Duration
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// ReportHealth hears what keeps the policies from reaching the agent or
	// their status from reaching the hub (nil once it works again).
	ReportHealth func(error)
}

// Hub is a policy.Source and policy.StatusSink over the hub.
type Hub struct {
	cfg    Config
	log    *slog.Logger
	client *hubclient.Client
	health *health.Health

	mu       sync.Mutex
	policies []*fleetv1.Policy
	changed  chan struct{}
}

var (
	_ policy.Source     = (*Hub)(nil)
	_ policy.StatusSink = (*Hub)(nil)
)

// New builds a Hub; Run polls.
func New(cfg Config) (*Hub, error) {
	if u, err := url.Parse(cfg.Hub); cfg.Hub == "" || err != nil || u.Scheme != "https" {
		return nil, fmt.Errorf("hub %q: want the https:// URL of the hub's agents port", cfg.Hub)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("a state folder holding the agent's credentials is required")
	}
	if cfg.PollTimeout <= 0 {
		cfg.PollTimeout = DefaultPollTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{cfg: cfg, log: log.With("cluster", cfg.ClusterName),
		client: hubclient.New(cfg.Hub, registration.PathsIn(cfg.StateDir)),
		health: health.New(cfg.ReportHealth), changed: make(chan struct{})}, nil
}

// Policies implements policy.Source: the replicas of the last list.
func (h *Hub) Policies() ([]*fleetv1.Policy, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.policies, h.changed
}

// Run long-polls the hub for the cluster's replicas until ctx ends. Hub
// outages are retried, never fatal; a deregistered cluster's agent is
// stopped by registration, so the poll only backs off.
func (h *Hub) Run(ctx context.Context) error {
	defer h.client.Close()
	rv, lastErr := "", ""
	bo := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for ctx.Err() == nil {
		list, err := h.list(ctx, rv)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var he *hubclient.Error
			hint := time.Duration(0)
			if errors.As(err, &he) {
				hint = he.RetryAfter
				if he.Deregistered {
					hint = time.Minute
				}
			}
			if msg := err.Error(); msg != lastErr {
				h.log.Warn("cannot list policies; retrying", "err", err)
				lastErr = msg
			}
			h.health.Set("list", fmt.Errorf("cannot list policies: %w", err))
			_ = backoff.Sleep(ctx, bo.Next(hint))
			continue
		}
		bo.Reset()
		h.health.Set("list", nil)
		if lastErr != "" {
			h.log.Info("listing policies again")
			lastErr = ""
		}
		if list == nil {
			continue // unchanged
		}
		rv = list.ResourceVersion
		h.set(list.Items)
	}
	return nil
}

// set replaces the policies and wakes the engine.
func (h *Hub) set(items []agentapi.PolicyItem) {
	ps := make([]*fleetv1.Policy, 0, len(items))
	for _, it := range items {
		ps = append(ps, h.policyOf(it))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.policies = ps
	close(h.changed)
	h.changed = make(chan struct{})
}

// policyOf is the replica as the engine reads it: in the cluster's hub
// namespace, with the root policy's label (which names the engine's
// metric labels) and a deletion timestamp when the hub deletes it.
func (h *Hub) policyOf(it agentapi.PolicyItem) *fleetv1.Policy {
	p := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: h.cfg.ClusterName, Name: it.Name, UID: types.UID(it.UID), Generation: it.Generation,
			Annotations: it.Annotations,
		},
		Spec: it.Spec,
	}
	if it.RootNamespace != "" && it.RootName != "" {
		p.Labels = map[string]string{fleetv1.LabelRootPolicy: it.RootNamespace + "." + it.RootName}
	}
	if it.Deleting {
		// The hub sends no time: what matters is that it is set.
		p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
	}
	if it.Status != nil {
		p.Status = *it.Status
	}
	return p
}

// list polls the replicas; nil, nil when nothing changed since rv.
func (h *Hub) list(ctx context.Context, rv string) (*agentapi.PolicyList, error) {
	q := url.Values{agentapi.ParamTimeout: {h.cfg.PollTimeout.String()}}
	if rv != "" {
		q.Set(agentapi.ParamResourceVersion, rv)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PollTimeout+hubclient.CallTimeout)
	defer cancel()
	resp, err := h.client.Do(ctx, "list policies", http.MethodGet, agentapi.PathPolicies+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, nil
	}
	var out agentapi.PolicyList
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&out); err != nil {
		return nil, fmt.Errorf("list policies: decode the hub's answer: %w", err)
	}
	return &out, nil
}

// Report implements policy.StatusSink: PUT the replica's status. A replica
// the hub no longer has (404) or that is now another object (409) is left
// to the next list, which drops or replaces it.
func (h *Hub) Report(ctx context.Context, p policy.Ref, status *fleetv1.PolicyStatus) error {
	body, err := json.Marshal(agentapi.PolicyStatusRequest{UID: string(p.UID), Status: *status})
	if err != nil {
		return fmt.Errorf("report status of policy %s: %w", p.Name, err)
	}
	err = h.client.Call(ctx, "report status of policy "+p.Name, http.MethodPut, agentapi.PolicyStatusPath(p.Name), body)
	if c := hubclient.Code(err); c == http.StatusNotFound || c == http.StatusConflict {
		h.log.Info("policy status not taken: the hub lists the policy no more", "policy", p.Name, "err", err)
		err = nil
	}
	h.health.Set("status", annotate("cannot report policy status", err))
	return err
}

// Pruned implements policy.StatusSink: DELETE the replica's finalizer.
func (h *Hub) Pruned(ctx context.Context, p policy.Ref) error {
	path := agentapi.PolicyFinalizerPath(p.Name) + "?" + url.Values{agentapi.ParamUID: {string(p.UID)}}.Encode()
	err := h.client.Call(ctx, "release policy "+p.Name, http.MethodDelete, path, nil)
	if c := hubclient.Code(err); c == http.StatusNotFound || c == http.StatusConflict {
		err = nil // gone, or another object: nothing to release
	}
	h.health.Set("status", annotate("cannot release a pruned policy", err))
	return err
}

func annotate(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
