package work

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/fleetpulse/fleetpulse/agent/internal/hubclient"
	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
)

const maxListBody = 64 << 20

// hubError is the hub's refusal of a call.
type hubError = hubclient.Error

// hubCode is the status of a *hubError, or 0.
func hubCode(err error) int { return hubclient.Code(err) }

// hubClient calls the hub's work endpoints over the agent's mutual-TLS
// client.
type hubClient struct{ *hubclient.Client }

func newHubClient(base string, paths registration.Paths) *hubClient {
	return &hubClient{hubclient.New(base, paths)}
}

func (h *hubClient) close() { h.Close() }

// list polls the works. It returns nil, nil when nothing changed since rv
// within timeout.
func (h *hubClient) list(ctx context.Context, rv string, timeout time.Duration) (*agentapi.WorkList, error) {
	q := url.Values{agentapi.ParamTimeout: {timeout.String()}}
	if rv != "" {
		q.Set(agentapi.ParamResourceVersion, rv)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout+hubclient.CallTimeout)
	defer cancel()
	resp, err := h.Do(ctx, "list works", http.MethodGet, agentapi.PathWorks+"?"+q.Encode(), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, nil
	}
	var out agentapi.WorkList
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxListBody)).Decode(&out); err != nil {
		return nil, fmt.Errorf("list works: decode the hub's answer: %w", err)
	}
	return &out, nil
}

// putStatus reports a work's status.
func (h *hubClient) putStatus(ctx context.Context, name string, req agentapi.WorkStatusRequest) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("report status of work %s: %w", name, err)
	}
	return h.Call(ctx, "report status of work "+name, http.MethodPut, agentapi.WorkStatusPath(name), body)
}

// removeFinalizer tells the hub the work's objects are gone (or left).
func (h *hubClient) removeFinalizer(ctx context.Context, name, uid string) error {
	path := agentapi.WorkFinalizerPath(name) + "?" + url.Values{agentapi.ParamUID: {uid}}.Encode()
	return h.Call(ctx, "release work "+name, http.MethodDelete, path, nil)
}
