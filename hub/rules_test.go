package hub

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

const probeRules = `groups:
  - name: probe
    rules:
      - record: cluster:probe:value
        expr: label_replace(vector(3), "cluster", "east", "", "")
      - alert: ProbePending
        expr: label_replace(vector(1), "cluster", "east", "", "")
        for: 1h
`

// TestRuleOutputIsStoredPerCluster checks that recording-rule output and
// ALERTS read back labelled with the cluster they were computed for, and that
// a pending alert keeps its start time across a hub restart instead of
// starting its "for" again.
func TestRuleOutputIsStoredPerCluster(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ruleFile := filepath.Join(dir, "probe.yaml")
	if err := os.WriteFile(ruleFile, []byte(probeRules), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.HTTPListenAddress = "127.0.0.1:0"
	cfg.AgentListenAddress = ""
	cfg.Store.Dir = filepath.Join(dir, "tsdb")
	cfg.NoShippedRules = true
	cfg.Alerting.RuleFiles = []string{ruleFile}
	cfg.Alerting.EvaluationInterval = 200 * time.Millisecond

	api1, stop := startHub(t, cfg)
	waitFor(t, api1, `cluster:probe:value{cluster="east"} == 3`)
	waitFor(t, api1, `ALERTS{alertname="ProbePending", alertstate="pending", cluster="east"}`)
	waitFor(t, api1, `ALERTS_FOR_STATE{alertname="ProbePending", cluster="east"}`)
	// Let the alert age so that a restored age is told apart from a new one.
	first := pendingSince(t, api1)
	for time.Since(first) < 3*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	stop()

	// The rules manager restores "for" state after its second evaluation,
	// once recording rules have caught up; until then the alert is new. The
	// restored start is shifted by the downtime, so it is the age that must
	// survive (to the second: ALERTS_FOR_STATE stores whole seconds).
	restart := time.Now()
	api2, _ := startHub(t, cfg)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := pendingSince(t, api2)
		if !got.IsZero() && restart.Sub(got) >= 2*time.Second {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after restart the alert is pending since %s, %s before the restart; want the ~3s it had been pending restored", got, restart.Sub(got))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func startHub(t *testing.T, cfg Config) (promv1.API, func()) {
	t.Helper()
	h, stop := runHub(t, cfg)
	c, err := api.NewClient(api.Config{Address: "http://" + h.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c), stop
}

// runHub runs a hub until the test ends (or stop), once its listeners are
// bound.
func runHub(t *testing.T, cfg Config) (h *Hub, stop func()) {
	t.Helper()
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub: %v", err)
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(10 * time.Second)
	for h.Addr() == nil || (cfg.AgentListenAddress != "" && h.AgentAddr() == nil) {
		if time.Now().After(deadline) {
			t.Fatal("hub never listened")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return h, stop
}

// waitFor polls until query returns at least one series.
func waitFor(t *testing.T, a promv1.API, query string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, _, err := a.Query(context.Background(), query, time.Now())
		if err == nil {
			if vec, ok := v.(model.Vector); ok && len(vec) > 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no result within 15s (last: %v, %v)", query, v, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pendingSince returns when ProbePending became active, zero if not listed.
func pendingSince(t *testing.T, a promv1.API) time.Time {
	t.Helper()
	res, err := a.Alerts(context.Background())
	if err != nil {
		return time.Time{}
	}
	for _, al := range res.Alerts {
		if al.Labels["alertname"] == "ProbePending" && al.State == promv1.AlertStatePending {
			return al.ActiveAt
		}
	}
	return time.Time{}
}
