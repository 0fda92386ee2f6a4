package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// slowQuery sorts five thousand samples of the probe series at each of ten
// thousand steps, so that it is in flight when the hub is told to stop.
const slowQuery = `quantile_over_time(0.5, cluster:probe:value[5s:1ms])`

// TestShutdownLetsQueriesInFlightComplete stops a hub while a query over the
// store runs: the query is answered in full, then the hub stops cleanly,
// because the users' server stops before the store closes.
func TestShutdownLetsQueriesInFlightComplete(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(ruleFile, []byte(probeRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.HTTPListenAddress, cfg.AgentListenAddress = "127.0.0.1:0", ""
	cfg.Store.Dir = filepath.Join(dir, "tsdb")
	cfg.NoShippedRules = true
	cfg.Alerting.RuleFiles = []string{ruleFile}
	cfg.Alerting.EvaluationInterval = 200 * time.Millisecond
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	t.Cleanup(cancel)
	testutil.Eventually(t, 30*time.Second, func() error {
		if h.Addr() == nil {
			return errors.New("hub not ready")
		}
		return nil
	})
	// The rules write the series the query reads, and query the store on
	// every evaluation while it runs.
	waitFor(t, hubAPI(t, h), `cluster:probe:value{cluster="east"} == 3`)

	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		now := time.Now()
		resp, err := http.Get("http://" + h.Addr().String() + "/api/v1/query_range?" + url.Values{
			"query": {slowQuery}, "start": {fmt.Sprint(now.Add(-5*time.Second).UnixMilli() / 1e3)}, "end": {fmt.Sprint(now.Add(5*time.Second).UnixMilli() / 1e3)}, "step": {"0.001"},
		}.Encode())
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{status: resp.StatusCode, body: string(body), err: err}
	}()
	// In flight: the engine's active query log, which Prometheus reads
	// after a crash, lists it.
	testutil.Eventually(t, 10*time.Second, func() error {
		active, err := os.ReadFile(filepath.Join(cfg.Store.Dir, "queries.active"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(active), "5s:1ms") {
			select {
			case a := <-answered:
				t.Fatalf("the query answered before the hub was stopped (%d, %d bytes): make it slower", a.status, len(a.body))
			default:
			}
			return errors.New("the slow query is not running yet")
		}
		return nil
	})
	stopping := time.Now()
	cancel()

	var a answer
	select {
	case a = <-answered:
	case <-time.After(cfg.ShutdownTimeout):
		t.Fatal("the query in flight was not answered within the shutdown timeout")
	}
	t.Logf("the query answered %s after the hub was told to stop", time.Since(stopping))
	if a.err != nil || a.status != http.StatusOK {
		t.Fatalf("query in flight during shutdown = %d %.200q (%v), want 200", a.status, a.body, a.err)
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Values [][2]any `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(a.body), &resp); err != nil || resp.Status != "success" || len(resp.Data.Result) != 1 {
		t.Fatalf("query in flight during shutdown answered %.200q, want one series", a.body)
	}
	if n := len(resp.Data.Result[0].Values); n < 1000 {
		t.Errorf("query in flight answered %d steps, want thousands", n)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v, want nil", err)
		}
	case <-time.After(cfg.ShutdownTimeout):
		t.Fatal("Run did not return after the query completed")
	}
}
