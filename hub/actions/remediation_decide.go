package actions

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// remedy is a change decideRemediation reports, for Events and logs.
type remedy struct {
	cluster string
	reason  string // Enforcing, WouldEnforce, Undone
	message string
}

// decideRemediation computes an AlertRemediation's next per-cluster states
// from the previous ones, the firing alerts, and the clusters the policy is
// bound to (it can only be enforced where it has a replica). It is pure;
// the propagator turns the Enforcing states into enforce replicas.
func decideRemediation(spec fleetv1.AlertRemediationSpec, prev []fleetv1.AlertRemediationCluster, firing map[string]firingAlert,
	bound map[string]bool, now time.Time) ([]fleetv1.AlertRemediationCluster, []remedy, time.Duration) {
	prevBy := map[string]fleetv1.AlertRemediationCluster{}
	names := map[string]bool{}
	enforcing := 0
	for _, c := range prev {
		prevBy[c.Cluster] = c
		names[c.Cluster] = true
		if holdsEnforce(c.State) {
			enforcing++
		}
	}
	for n := range firing {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	var next []fleetv1.AlertRemediationCluster
	var out []remedy
	wake := time.Duration(0)
	soon := func(d time.Duration) {
		if d > 0 && (wake == 0 || d < wake) {
			wake = d
		}
	}
	policy := spec.PolicyRef.Namespace + "/" + spec.PolicyRef.Name
	at := metav1.NewTime(now.Truncate(time.Second))
	for _, name := range sorted {
		p := prevBy[name]
		f, fires := firing[name]
		entry := p
		if fires {
			entry.AlertLabels, entry.Value = f.labels, strconv.FormatFloat(f.value, 'g', 6, 64)
		}
		entry.Cluster = name
		move := func(state, msg string) {
			if entry.State != state {
				entry.Since = at
			}
			entry.State, entry.Message = state, msg
		}
		switch {
		case fires && holdsEnforce(p.State):
			move(fleetv1.RemediationStateEnforcing, "the alert fires; the policy stays enforced")
		case fires:
			if p.State == "" {
				move(fleetv1.RemediationStateFiring, "the alert fires")
			}
			if entry.State == fleetv1.RemediationStateFiring {
				if held := now.Sub(entry.Since.Time); held < spec.EnforceAfter.Duration {
					soon(spec.EnforceAfter.Duration - held)
					break
				}
			}
			what := fmt.Sprintf("alert %s %v = %s", spec.AlertName, entry.AlertLabels, entry.Value)
			switch {
			case !bound[name]:
				move(fleetv1.RemediationStateHeld, fmt.Sprintf("not enforced: policy %s is not bound to the cluster", policy))
			case spec.DryRun:
				if entry.State != fleetv1.RemediationStateWouldEnforce {
					out = append(out, remedy{name, "WouldEnforce", fmt.Sprintf("dry run: would enforce %s on %s: %s", policy, name, what)})
				}
				move(fleetv1.RemediationStateWouldEnforce, fmt.Sprintf("dry run: would enforce %s", policy))
			case spec.MaxClusters > 0 && int32(enforcing) >= spec.MaxClusters:
				move(fleetv1.RemediationStateHeld, fmt.Sprintf("not enforced: %d clusters already enforced by this rule (maxClusters %d)", enforcing, spec.MaxClusters))
			default:
				move(fleetv1.RemediationStateEnforcing, fmt.Sprintf("enforcing %s: the alert fired for %s", policy, spec.EnforceAfter.Duration))
				out = append(out, remedy{name, "Enforcing", fmt.Sprintf("enforcing %s on %s: %s", policy, name, what)})
				enforcing++
			}
		case holdsEnforce(p.State) && spec.UndoAfter == nil:
			move(fleetv1.RemediationStateEnforcing, "the alert resolved; the policy stays enforced (no undoAfter)")
		case holdsEnforce(p.State):
			if p.State == fleetv1.RemediationStateEnforcing {
				move(fleetv1.RemediationStateResolved, "the alert resolved; waiting before undoing")
			}
			quiet := now.Sub(entry.Since.Time)
			if quiet < spec.UndoAfter.Duration {
				soon(spec.UndoAfter.Duration - quiet)
				break
			}
			out = append(out, remedy{name, "Undone", fmt.Sprintf("%s back to its own remediation on %s: alert %s resolved for %s",
				policy, name, spec.AlertName, quiet.Truncate(time.Second))})
			continue // forgotten
		default:
			continue // not firing and not enforcing: nothing to keep
		}
		next = append(next, entry)
	}
	return next, out, wake
}

// holdsEnforce: the states in which the rule holds the policy enforced.
func holdsEnforce(state string) bool {
	return state == fleetv1.RemediationStateEnforcing || state == fleetv1.RemediationStateResolved
}
