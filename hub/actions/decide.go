package actions

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

// States of a cluster under an AlertTaint rule.
const (
	StateFiring     = "Firing"     // firing, waiting for TaintAfter
	StateTainted    = "Tainted"    // tainted while the alert fires
	StateResolved   = "Resolved"   // tainted, alert resolved, waiting for UntaintAfter
	StateHeld       = "Held"       // would taint, but the bound or the guard forbids it
	StateWouldTaint = "WouldTaint" // dry run
)

// firingAlert is one firing instance of the rule's alert, per cluster.
type firingAlert struct {
	labels map[string]string
	value  float64
}

// firingByCluster picks the rule's firing alerts and keys them by cluster;
// alerts without a cluster label cannot taint anything and are skipped.
func firingByCluster(alertName string, matchLabels map[string]string, active []alerting.Alert) map[string]firingAlert {
	out := map[string]firingAlert{}
	for _, a := range active {
		if a.Name != alertName || !a.Firing {
			continue
		}
		match := true
		for k, v := range matchLabels {
			if a.Labels[k] != v {
				match = false
				break
			}
		}
		cluster := a.Labels["cluster"]
		if !match || cluster == "" {
			continue
		}
		if prev, ok := out[cluster]; !ok || a.Value > prev.value {
			out[cluster] = firingAlert{labels: a.Labels, value: a.Value}
		}
	}
	return out
}

// action is a change decide asks for.
type action struct {
	cluster string
	taint   bool // true: add the taint; false: remove it
	reason  string
	message string
}

// fleetView is what the guard needs: clusters that could take work now.
type fleetView struct {
	// fit holds accepted, Available clusters without a NoSelect taint.
	fit map[string]bool
}

// decide computes the rule's next per-cluster states and the taint changes,
// from the previous states, the firing alerts and the fleet. It is pure.
func decide(spec fleetv1.AlertTaintSpec, prev []fleetv1.AlertTaintCluster, firing map[string]firingAlert, fleet fleetView, now time.Time) ([]fleetv1.AlertTaintCluster, []action, time.Duration) {
	prevBy := map[string]fleetv1.AlertTaintCluster{}
	for _, c := range prev {
		prevBy[c.Cluster] = c
	}
	names := map[string]bool{}
	for n := range prevBy {
		names[n] = true
	}
	for n := range firing {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	tainted := 0
	for _, c := range prev {
		if c.State == StateTainted || c.State == StateResolved {
			tainted++
		}
	}
	// Clusters that can take work once this rule's taints are counted: the
	// guard keeps at least one.
	fitLeft := 0
	for n := range fleet.fit {
		if p, ok := prevBy[n]; !ok || (p.State != StateTainted && p.State != StateResolved) {
			fitLeft++
		}
	}

	var next []fleetv1.AlertTaintCluster
	var acts []action
	wake := time.Duration(0)
	soon := func(d time.Duration) {
		if d > 0 && (wake == 0 || d < wake) {
			wake = d
		}
	}
	at := metav1.NewTime(now.Truncate(time.Second))
	for _, name := range sorted {
		p, had := prevBy[name]
		f, fires := firing[name]
		entry := fleetv1.AlertTaintCluster{Cluster: name, State: p.State, Since: p.Since, AlertLabels: p.AlertLabels, Value: p.Value, Message: p.Message}
		if fires {
			entry.AlertLabels, entry.Value = f.labels, strconv.FormatFloat(f.value, 'g', 6, 64)
		}
		move := func(state, msg string) {
			if entry.State != state {
				entry.Since = at
			}
			entry.State, entry.Message = state, msg
		}
		switch {
		case fires && (p.State == StateTainted || p.State == StateResolved):
			move(StateTainted, "the alert fires; the cluster stays tainted")
		case fires:
			if !had || p.State == "" {
				move(StateFiring, "the alert fires")
			}
			if entry.State == StateFiring {
				if held := now.Sub(entry.Since.Time); held < spec.TaintAfter.Duration {
					soon(spec.TaintAfter.Duration - held)
					break
				}
			}
			switch {
			case spec.DryRun:
				move(StateWouldTaint, fmt.Sprintf("dry run: would taint %s", spec.Taint.Key))
			case spec.MaxTaintedClusters > 0 && int32(tainted) >= spec.MaxTaintedClusters:
				move(StateHeld, fmt.Sprintf("not tainted: %d clusters already tainted by this rule (maxTaintedClusters %d)", tainted, spec.MaxTaintedClusters))
			case fleet.fit[name] && fitLeft <= 1:
				move(StateHeld, "not tainted: no other cluster could take its work")
			default:
				move(StateTainted, "tainted: the alert fired for "+spec.TaintAfter.Duration.String())
				acts = append(acts, action{cluster: name, taint: true, reason: "Tainted",
					message: fmt.Sprintf("tainted %s (%s): alert %s %v = %s", name, spec.Taint.Key, spec.AlertName, f.labels, entry.Value)})
				tainted++
				if fleet.fit[name] {
					fitLeft--
				}
			}
		case p.State == StateTainted || p.State == StateResolved:
			if p.State == StateTainted {
				move(StateResolved, "the alert resolved; waiting before untainting")
			}
			quiet := now.Sub(entry.Since.Time)
			if quiet < spec.UntaintAfter.Duration {
				soon(spec.UntaintAfter.Duration - quiet)
				break
			}
			acts = append(acts, action{cluster: name, taint: false, reason: "Untainted",
				message: fmt.Sprintf("untainted %s (%s): alert %s resolved for %s", name, spec.Taint.Key, spec.AlertName, quiet.Truncate(time.Second))})
			continue // forgotten
		default:
			continue // not firing and never tainted: nothing to keep
		}
		next = append(next, entry)
	}
	return next, acts, wake
}
