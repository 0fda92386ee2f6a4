package hub

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
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
	// Let the alert age so that a restored age is told apart from a new
	// one. The restored start is the restoring evaluation's time less the
	// age, and that evaluation comes a start-up and two evaluations after
	// the restart (seconds, on a loaded machine): the age must exceed that.
	first := pendingSince(t, api1)
	for time.Since(first) < 8*time.Second {
		time.Sleep(100 * time.Millisecond)
	}
	stop()

	// The rules manager restores "for" state after its second evaluation,
	// once recording rules have caught up; until then the alert is new. The
	// restored start is shifted by the downtime, so it is the age that must
	// survive (to the second: ALERTS_FOR_STATE stores whole seconds).
	restart := time.Now()
	api2, _ := startHub(t, cfg)
	testutil.Eventually(t, 15*time.Second, func() error {
		if got := pendingSince(t, api2); got.IsZero() || restart.Sub(got) < 2*time.Second {
			return fmt.Errorf("after restart the alert is pending since %s, %s before the restart; want the ~8s it had been pending restored", got, restart.Sub(got))
		}
		return nil
	})
}

// startHub runs a hub and returns a Prometheus API client on it.
func startHub(t *testing.T, cfg Config) (promv1.API, func()) {
	t.Helper()
	h, stop := runHub(t, cfg)
	return hubAPI(t, h), stop
}

// hubAPI is a Prometheus API client on a ready hub.
func hubAPI(t *testing.T, h *Hub) promv1.API {
	t.Helper()
	c, err := api.NewClient(api.Config{Address: "http://" + h.Addr().String()})
	if err != nil {
		t.Fatal(err)
	}
	return promv1.NewAPI(c)
}

// runHub runs a hub until the test ends (or stop), once its listeners are
// bound. The hub package's tests cannot use hubtest, which imports the hub.
func runHub(t *testing.T, cfg Config) (h *Hub, stop func()) {
	t.Helper()
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop = testutil.Run(t, h.Run, func() bool {
		return h.Addr() != nil && (cfg.AgentListenAddress == "" || h.AgentAddr() != nil)
	})
	return h, stop
}

// waitFor polls until query returns at least one series.
func waitFor(t *testing.T, a promv1.API, query string) {
	t.Helper()
	testutil.Eventually(t, 15*time.Second, func() error {
		v, _, err := a.Query(context.Background(), query, time.Now())
		if err != nil {
			return err
		}
		if vec, ok := v.(model.Vector); !ok || len(vec) == 0 {
			return fmt.Errorf("%s = %v, want a series", query, v)
		}
		return nil
	})
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
