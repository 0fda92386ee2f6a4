package hub

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// heldRules are a per-cluster alert that stays pending for an hour.
const heldRules = `groups:
  - name: held
    rules:
      - alert: ProbeHeld
        expr: sum by (cluster) (fanout_probe) >= 0
        for: 1h
`

// TestAlertsCarryOnWhenTheirClusterMoves runs two replicas in a ring with
// a per-cluster alert pending for its clusters, lets the alerts age, and
// adds a third replica: the clusters it takes over keep their alerts'
// start time there (read from the state the previous owner wrote), rather
// than start their "for" over, and the previous owners stop evaluating
// them.
func TestAlertsCarryOnWhenTheirClusterMoves(t *testing.T) {
	t.Parallel()
	ca := testbed.NewCA(t, "agents")
	rules := ruleFile(t, "held.yaml", heldRules)
	configure := func(cfg *Config) {
		cfg.Alerting.RuleFiles, cfg.Alerting.EvaluationInterval = []string{rules}, 200*time.Millisecond
	}
	replicas, _ := ringReplicasWith(t, ca, 2, configure)
	var clusters []string
	for i := range 20 {
		clusters = append(clusters, fmt.Sprintf("c-%d", i))
	}
	now := time.Now().Truncate(time.Second)
	for i, c := range clusters {
		writeProbe(t, ca, ownerOf(t, replicas, c), c, i, now)
	}
	held := func(h *Hub) map[string]time.Time {
		out := map[string]time.Time{}
		for _, a := range h.alerts.Load().Local() {
			if a.Name == "ProbeHeld" {
				out[a.Labels["cluster"]] = a.ActiveAt
			}
		}
		return out
	}
	since := map[string]time.Time{}
	testutil.Eventually(t, 30*time.Second, func() error {
		for _, h := range replicas {
			for c, at := range held(h) {
				since[c] = at
			}
		}
		if len(since) != len(clusters) {
			return fmt.Errorf("%d of %d clusters' alerts pending", len(since), len(clusters))
		}
		return nil
	})
	// Old enough that a new start is told apart, to the second that
	// ALERTS_FOR_STATE keeps.
	testutil.Eventually(t, 30*time.Second, func() error {
		for c, at := range since {
			if age := time.Since(at); age < 3*time.Second {
				return fmt.Errorf("%s's alert is %s old", c, age)
			}
		}
		return nil
	})

	third, _ := addRingReplica(t, ca, replicas, configure)
	all := append(replicas, third)
	waitPeers(t, all)
	var moved []string
	for _, c := range clusters {
		if ownerOf(t, all, c) == third {
			moved = append(moved, c)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("the third replica took none of %d clusters over", len(clusters))
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		got := held(third)
		for _, c := range moved {
			at, ok := got[c]
			if !ok {
				return fmt.Errorf("the new owner of %s holds no alert for it", c)
			}
			if at.Unix() != since[c].Unix() {
				return fmt.Errorf("%s's alert pending at its new owner since %s, want since %s as at its previous owner", c, at, since[c])
			}
		}
		for _, h := range replicas {
			for _, c := range moved {
				if _, ok := held(h)[c]; ok {
					return fmt.Errorf("%s still evaluates %s's alert after it moved", h.Ring().Self().ID, c)
				}
			}
		}
		return nil
	})
	t.Logf("%d of %d clusters moved to the third replica, their alerts' start times carried on", len(moved), len(clusters))
}

// ruleFile writes a rule file into the test's temp dir and returns its path.
func ruleFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
