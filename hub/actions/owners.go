package actions

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// AnnotationOwners records, on a ManagedCluster, which AlertTaint put which
// of its taints there: a JSON object from AlertTaint name to the taints it
// owns ({"rule":[{"key":"k","effect":"NoSelect"}]}). A taint's key alone
// cannot say it: a rule's key changes, two rules may share one, and a
// person may set the same taint by hand. Taints no AlertTaint owns are
// never touched.
const AnnotationOwners = "fleetpulse.io/alert-taints"

// Finalizer holds a deleted AlertTaint until its taints are off every
// cluster.
const Finalizer = "actions.fleetpulse.io/alert-taints"

// taintID names a taint as the rules own it: Kubernetes identifies a taint
// by key and effect.
type taintID struct {
	Key    string              `json:"key"`
	Effect fleetv1.TaintEffect `json:"effect"`
}

func idOf(t fleetv1.Taint) taintID { return taintID{Key: t.Key, Effect: t.Effect} }

// owners is the ownership annotation: AlertTaint name → taints it owns.
type owners map[string][]taintID

// parseOwners reads the annotation; a value that is not ours to read (a
// person's edit gone wrong) counts as no ownership, so that the rules still
// wanting their taints adopt them again.
func parseOwners(annotations map[string]string) (owners, bool) {
	v, ok := annotations[AnnotationOwners]
	if !ok {
		return owners{}, true
	}
	var o owners
	if err := json.Unmarshal([]byte(v), &o); err != nil || o == nil {
		return owners{}, false
	}
	return o, true
}

func (o owners) String() string {
	b, _ := json.Marshal(o) // map keys sorted: the same ownership, the same text
	return string(b)
}

// setOwners writes the annotation, or removes it when nobody owns anything.
func setOwners(annotations map[string]string, o owners) map[string]string {
	if len(o) == 0 {
		delete(annotations, AnnotationOwners)
		return annotations
	}
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationOwners] = o.String()
	return annotations
}

// ownedBy reports whether rule owns a taint of the cluster per o.
func (o owners) ownedBy(rule string, t fleetv1.Taint) bool {
	return slices.Contains(o[rule], idOf(t))
}

// claim is one rule's say over one cluster in a sync: the taint it wants
// there, or nil for none (its alert resolved long enough, or the rule is
// being deleted).
type claim struct {
	rule string
	want *fleetv1.Taint
}

// syncTaints is a cluster's taints and ownership once rule has its say:
// the rule owns the taint it wants (added if missing, adopted if present
// but unowned, its value brought up to date) and nothing else; owners that
// are no AlertTaint any more (live reports false) lose theirs; a taint goes
// when the last of its owners lets it go, and stays while another rule
// owns it. Taints nobody owned before are kept. It is pure.
func syncTaints(taints []fleetv1.Taint, before owners, c claim, live func(rule string) bool, now time.Time) ([]fleetv1.Taint, owners) {
	after := owners{}
	for rule, ids := range before {
		if rule != c.rule && live(rule) && len(ids) > 0 {
			after[rule] = slices.Clone(ids)
		}
	}
	if c.want != nil {
		after[c.rule] = []taintID{idOf(*c.want)}
	}
	wasOwned, owned := map[taintID]bool{}, map[taintID]bool{}
	for _, ids := range before {
		for _, id := range ids {
			wasOwned[id] = true
		}
	}
	for _, ids := range after {
		for _, id := range ids {
			owned[id] = true
		}
	}
	out := make([]fleetv1.Taint, 0, len(taints)+1)
	present := false
	for _, t := range taints {
		id := idOf(t)
		if wasOwned[id] && !owned[id] {
			continue // its last owner let it go
		}
		if c.want != nil && id == idOf(*c.want) {
			if present {
				continue // one taint per key and effect
			}
			present = true
			t.Value = c.want.Value
		}
		out = append(out, t)
	}
	if c.want != nil && !present {
		t := *c.want
		t.TimeAdded = metav1.NewTime(now.Truncate(time.Second))
		out = append(out, t)
	}
	// Ownership of a taint that is not there (removed by hand) is dropped:
	// the rule adds it again if it still wants it, on this sync.
	ids := map[taintID]bool{}
	for _, t := range out {
		ids[idOf(t)] = true
	}
	for rule, own := range after {
		own = slices.DeleteFunc(own, func(id taintID) bool { return !ids[id] })
		if len(own) == 0 {
			delete(after, rule)
			continue
		}
		after[rule] = own
	}
	return out, after
}

// sameOwners compares ownership as it is written.
func sameOwners(a, b owners) bool {
	return maps.EqualFunc(a, b, slices.Equal)
}
