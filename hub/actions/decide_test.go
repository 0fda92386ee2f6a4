package actions

import (
	"slices"
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
		next, acts, _ := decide(s, prev, firingByCluster(s.AlertName, s.MatchLabels, active), fleet, at)
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

// TestSyncTaints: a rule owns exactly the taint it wants on a cluster; a
// taint goes when its last owner lets it go (the rule's former key, a
// resolved alert, a deleted rule), never one a person or another component
// set, nor one another rule still holds.
func TestSyncTaints(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := metav1.NewTime(t0.Add(-time.Hour))
	taint := func(key string) fleetv1.Taint {
		return fleetv1.Taint{Key: key, Effect: fleetv1.TaintNoSelect, TimeAdded: at}
	}
	wants := func(key string) *fleetv1.Taint {
		t := fleetv1.Taint{Key: key, Effect: fleetv1.TaintNoSelect}
		return &t
	}
	id := func(key string) taintID { return taintID{Key: key, Effect: fleetv1.TaintNoSelect} }
	manual, unreachable := taint("example.com/maintenance"), taint(fleetv1.TaintUnreachable)
	live := map[string]bool{"r": true, "other": true}
	for _, tc := range []struct {
		name       string
		taints     []fleetv1.Taint
		owners     owners
		claim      claim
		want       []string // keys, in order
		wantOwners owners
	}{
		{"the wanted taint is added and owned; others stay",
			[]fleetv1.Taint{manual, unreachable}, owners{},
			claim{"r", wants("k1")}, []string{manual.Key, unreachable.Key, "k1"}, owners{"r": {id("k1")}}},
		{"held: nothing changes",
			[]fleetv1.Taint{manual, taint("k1")}, owners{"r": {id("k1")}},
			claim{"r", wants("k1")}, []string{manual.Key, "k1"}, owners{"r": {id("k1")}}},
		{"key changed: the former key's taint goes, the new one comes",
			[]fleetv1.Taint{taint("k1"), manual}, owners{"r": {id("k1")}},
			claim{"r", wants("k2")}, []string{manual.Key, "k2"}, owners{"r": {id("k2")}}},
		{"no longer wanted (resolved, or the rule deleted): removed",
			[]fleetv1.Taint{taint("k1"), manual}, owners{"r": {id("k1")}},
			claim{"r", nil}, []string{manual.Key}, nil},
		{"a taint another rule holds stays when one owner lets it go",
			[]fleetv1.Taint{taint("k1")}, owners{"r": {id("k1")}, "other": {id("k1")}},
			claim{"r", nil}, []string{"k1"}, owners{"other": {id("k1")}}},
		{"a gone rule's taint goes on any rule's sync",
			[]fleetv1.Taint{taint("k1"), taint("gone-key")}, owners{"r": {id("k1")}, "gone": {id("gone-key")}},
			claim{"r", wants("k1")}, []string{"k1"}, owners{"r": {id("k1")}}},
		{"a taint of the wanted key set by hand is adopted",
			[]fleetv1.Taint{taint("k1")}, owners{},
			claim{"r", wants("k1")}, []string{"k1"}, owners{"r": {id("k1")}}},
		{"a taint of the rule's key it does not own is not removed",
			[]fleetv1.Taint{taint("k1")}, owners{},
			claim{"r", nil}, []string{"k1"}, nil},
		{"the rule's ownership of a taint removed by hand is dropped, and the taint put back if wanted",
			[]fleetv1.Taint{manual}, owners{"r": {id("k1")}, "other": {id("k9")}},
			claim{"r", wants("k1")}, []string{manual.Key, "k1"}, owners{"r": {id("k1")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, gotOwners := syncTaints(tc.taints, tc.owners, tc.claim, func(r string) bool { return live[r] }, t0)
			var keys []string
			for _, tt := range got {
				keys = append(keys, tt.Key)
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("taints %v, want %v", keys, tc.want)
			}
			if !sameOwners(gotOwners, tc.wantOwners) {
				t.Errorf("owners %v, want %v", gotOwners, tc.wantOwners)
			}
			for _, tt := range got {
				if prev := slices.IndexFunc(tc.taints, func(p fleetv1.Taint) bool { return idOf(p) == idOf(tt) }); prev >= 0 {
					if !tt.TimeAdded.Equal(&at) {
						t.Errorf("%s: time added %v changed", tt.Key, tt.TimeAdded)
					}
				} else if !tt.TimeAdded.Time.Equal(t0) {
					t.Errorf("%s: added at %v, want %v", tt.Key, tt.TimeAdded, t0)
				}
			}
		})
	}

	// The annotation round-trips; one that cannot be read is no ownership,
	// and says so.
	ann := setOwners(nil, owners{"r": {id("k1")}})
	if o, ok := parseOwners(ann); !ok || !sameOwners(o, owners{"r": {id("k1")}}) {
		t.Errorf("annotation %v reads as %v (%t)", ann, o, ok)
	}
	if o, ok := parseOwners(map[string]string{AnnotationOwners: "{not json"}); ok || len(o) != 0 {
		t.Errorf("an unreadable annotation reads as %v (%t), want nothing and false", o, ok)
	}
	if ann := setOwners(map[string]string{AnnotationOwners: "x", "keep": "y"}, nil); len(ann) != 1 || ann["keep"] != "y" {
		t.Errorf("without owners the annotation stays: %v", ann)
	}
}
