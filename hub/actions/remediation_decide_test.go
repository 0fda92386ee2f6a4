package actions

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestDecideRemediation(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	spec := fleetv1.AlertRemediationSpec{AlertName: "QuotaMissing", PolicyRef: fleetv1.PolicyRef{Namespace: "p", Name: "quota"},
		EnforceAfter: metav1.Duration{Duration: 10 * time.Second}, MaxClusters: 1}
	fires := func(clusters ...string) map[string]firingAlert {
		out := map[string]firingAlert{}
		for _, c := range clusters {
			out[c] = firingAlert{labels: map[string]string{"cluster": c}, value: 1}
		}
		return out
	}
	bound := map[string]bool{"a": true, "b": true}
	states := func(cs []fleetv1.AlertRemediationCluster) string {
		s := ""
		for _, c := range cs {
			s += c.Cluster + "=" + c.State + " "
		}
		return s
	}
	reasons := func(rs []remedy) string { return fmt.Sprint(len(rs)) }

	// Firing waits enforceAfter ("c", where the policy is not bound, too).
	next, rs, wake := decideRemediation(spec, nil, fires("a", "c"), bound, t0)
	if got := states(next); got != "a=Firing c=Firing " || reasons(rs) != "0" || wake != 10*time.Second {
		t.Fatalf("first pass: %s, %d remedies, wake %s", got, len(rs), wake)
	}
	// After enforceAfter: a is enforced, c held (not bound); b, firing
	// too, waits its own turn.
	next, rs, _ = decideRemediation(spec, next, fires("a", "b", "c"), bound, t0.Add(10*time.Second))
	if got := states(next); got != "a=Enforcing b=Firing c=Held " || len(rs) != 1 || rs[0].reason != "Enforcing" {
		t.Fatalf("after enforceAfter: %s, %+v", got, rs)
	}
	// maxClusters 1: b is held while a is enforced.
	next, _, _ = decideRemediation(spec, next, fires("a", "b"), bound, t0.Add(25*time.Second))
	if got := states(next); got != "a=Enforcing b=Held " {
		t.Fatalf("bounded: %s", got)
	}
	// Resolved without undoAfter: a stays enforced; b is forgotten.
	next, rs, _ = decideRemediation(spec, next, nil, bound, t0.Add(30*time.Second))
	if got := states(next); got != "a=Enforcing " || len(rs) != 0 {
		t.Fatalf("resolved, no undoAfter: %s %+v", got, rs)
	}
	// With undoAfter: Resolved, then undone after it.
	spec.UndoAfter = &metav1.Duration{Duration: time.Minute}
	next, _, wake = decideRemediation(spec, next, nil, bound, t0.Add(40*time.Second))
	if got := states(next); got != "a=Resolved " || wake != time.Minute {
		t.Fatalf("resolved with undoAfter: %s wake %s", got, wake)
	}
	// Firing again while Resolved: back to Enforcing, no new remedy.
	again, rs, _ := decideRemediation(spec, next, fires("a"), bound, t0.Add(50*time.Second))
	if got := states(again); got != "a=Enforcing " || len(rs) != 0 {
		t.Fatalf("fires again: %s %+v", got, rs)
	}
	next, rs, _ = decideRemediation(spec, next, nil, bound, t0.Add(100*time.Second))
	if len(next) != 0 || len(rs) != 1 || rs[0].reason != "Undone" {
		t.Fatalf("undo: %s %+v", states(next), rs)
	}
	// Dry run: WouldEnforce, recorded once.
	spec.DryRun = true
	next, rs, _ = decideRemediation(spec, nil, fires("a"), bound, t0)
	next, rs2, _ := decideRemediation(spec, next, fires("a"), bound, t0.Add(10*time.Second))
	next, rs3, _ := decideRemediation(spec, next, fires("a"), bound, t0.Add(20*time.Second))
	if got := states(next); got != "a=WouldEnforce " || len(rs) != 0 || len(rs2) != 1 || len(rs3) != 0 {
		t.Fatalf("dry run: %s, remedies %d %d %d", got, len(rs), len(rs2), len(rs3))
	}
}
