package actions

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/alerting"
)

func TestDecide(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	spec := fleetv1.AlertTaintSpec{
		AlertName: "NodesNotReady", MatchLabels: map[string]string{"severity": "warning"},
		Taint:      fleetv1.Taint{Key: "fleetpulse.io/nodes-not-ready", Effect: fleetv1.TaintNoSelect},
		TaintAfter: metav1.Duration{Duration: 10 * time.Second}, UntaintAfter: metav1.Duration{Duration: 30 * time.Second},
	}
	fires := func(clusters ...string) []alerting.Alert {
		var out []alerting.Alert
		for _, c := range clusters {
			out = append(out, alerting.Alert{Name: "NodesNotReady", Firing: true, Value: 0.5, Labels: map[string]string{"cluster": c, "severity": "warning"}})
		}
		return out
	}
	three := fleetView{fit: map[string]bool{"a": true, "b": true, "c": true}}
	step := func(s fleetv1.AlertTaintSpec, prev []fleetv1.AlertTaintCluster, active []alerting.Alert, fleet fleetView, at time.Time) ([]fleetv1.AlertTaintCluster, []action) {
		next, acts, _ := decide(s, prev, firingByCluster(s, active), fleet, at)
		return next, acts
	}

	// Fires: held for TaintAfter, then tainted once.
	st, acts := step(spec, nil, fires("a"), three, t0)
	if len(acts) != 0 || len(st) != 1 || st[0].State != StateFiring {
		t.Fatalf("first firing: %+v %+v, want Firing and no action", st, acts)
	}
	st, acts = step(spec, st, fires("a"), three, t0.Add(5*time.Second))
	if len(acts) != 0 || st[0].State != StateFiring {
		t.Fatalf("within TaintAfter: %+v %+v", st, acts)
	}
	st, acts = step(spec, st, fires("a"), three, t0.Add(10*time.Second))
	if len(acts) != 1 || !acts[0].taint || acts[0].cluster != "a" || st[0].State != StateTainted {
		t.Fatalf("after TaintAfter: %+v %+v, want a tainted", st, acts)
	}
	st, acts = step(spec, st, fires("a"), three, t0.Add(11*time.Second))
	if len(acts) != 0 || st[0].State != StateTainted {
		t.Fatalf("still firing: %+v %+v, want no second taint", st, acts)
	}
	// Resolves: untainted only after UntaintAfter; a flap back keeps the taint.
	st, _ = step(spec, st, nil, three, t0.Add(20*time.Second))
	if st[0].State != StateResolved {
		t.Fatalf("resolved: %+v", st)
	}
	st, acts = step(spec, st, fires("a"), three, t0.Add(25*time.Second))
	if len(acts) != 0 || st[0].State != StateTainted {
		t.Fatalf("flapped back: %+v %+v, want Tainted, no action", st, acts)
	}
	st, _ = step(spec, st, nil, three, t0.Add(30*time.Second))
	st, acts = step(spec, st, nil, three, t0.Add(59*time.Second))
	if len(acts) != 0 {
		t.Fatalf("before UntaintAfter: %+v", acts)
	}
	st, acts = step(spec, st, nil, three, t0.Add(60*time.Second))
	if len(acts) != 1 || acts[0].taint || len(st) != 0 {
		t.Fatalf("after UntaintAfter: %+v %+v, want one untaint and nothing kept", st, acts)
	}

	// Labels that do not match, pending alerts and alerts without a cluster
	// label do nothing.
	other := []alerting.Alert{
		{Name: "NodesNotReady", Firing: true, Labels: map[string]string{"cluster": "a", "severity": "info"}},
		{Name: "NodesNotReady", Firing: false, Labels: map[string]string{"cluster": "b", "severity": "warning"}},
		{Name: "NodesNotReady", Firing: true, Labels: map[string]string{"severity": "warning"}},
	}
	if st, _ := step(spec, nil, other, three, t0); len(st) != 0 {
		t.Errorf("non-matching alerts produced %+v", st)
	}

	// The bound: at most one tainted cluster.
	bounded := spec
	bounded.TaintAfter = metav1.Duration{}
	bounded.MaxTaintedClusters = 1
	st, acts = step(bounded, nil, fires("a", "b"), three, t0)
	if len(acts) != 1 || acts[0].cluster != "a" || st[1].State != StateHeld {
		t.Errorf("bound of 1: %+v %+v, want a tainted and b held", st, acts)
	}

	// The guard: the last cluster that could take work is never tainted.
	st, acts = step(bounded, nil, fires("a"), fleetView{fit: map[string]bool{"a": true}}, t0)
	if len(acts) != 0 || st[0].State != StateHeld {
		t.Errorf("guard: %+v %+v, want a held", st, acts)
	}
	unbounded := bounded
	unbounded.MaxTaintedClusters = 0
	st, acts = step(unbounded, nil, fires("a", "b", "c"), three, t0)
	if len(acts) != 2 || st[2].State != StateHeld {
		t.Errorf("guard over three: %+v %+v, want two tainted, the third held", st, acts)
	}

	// Dry run: recorded, nothing done.
	dry := unbounded
	dry.DryRun = true
	st, acts = step(dry, nil, fires("a"), three, t0)
	if len(acts) != 0 || st[0].State != StateWouldTaint {
		t.Errorf("dry run: %+v %+v", st, acts)
	}
}
