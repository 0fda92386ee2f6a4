package workset

import (
	"sort"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Rollout strategy types.
const (
	RolloutAll                 = "All"
	RolloutProgressive         = "Progressive"
	RolloutProgressivePerGroup = "ProgressivePerGroup"
)

// target is a cluster a placementRef decides.
type target struct {
	cluster string
	group   int
}

// workState is where a cluster's work stands in the rollout.
type workState int

const (
	// stateMissing: no work yet.
	stateMissing workState = iota
	// stateOutdated: the work's spec is not the template.
	stateOutdated
	// stateRolling: the work has the template, but is not yet Available for
	// its generation.
	stateRolling
	// stateDone: the work has the template and is Available for it.
	stateDone
	// stateDeleting: the work is being deleted; a new one follows once it
	// is gone.
	stateDeleting
)

// stateOf places a work in the rollout (nil: no work), given its template's
// hash and the hash of the template it should have.
func stateOf(w *fleetv1.ManifestWork, hash, want string) workState {
	switch {
	case w == nil:
		return stateMissing
	case w.DeletionTimestamp != nil:
		return stateDeleting
	case hash != want:
		return stateOutdated
	case availableForGeneration(w):
		return stateDone
	default:
		return stateRolling
	}
}

// availableForGeneration: the agent has applied this generation of the
// work and reports it Available.
func availableForGeneration(w *fleetv1.ManifestWork) bool {
	if w.Status.ObservedGeneration != w.Generation {
		return false
	}
	c := meta.FindStatusCondition(w.Status.Conditions, fleetv1.WorkAvailable)
	return c != nil && c.Status == metav1.ConditionTrue && (c.ObservedGeneration == 0 || c.ObservedGeneration == w.Generation)
}

// plan picks the clusters of one placementRef whose work to create or update
// now, and counts those that wait their turn. targets are ordered by
// decision group, then name.
func plan(strategy fleetv1.RolloutStrategy, targets []target, state map[string]workState) (apply []string, waiting int) {
	pending := func(c string) bool { s := state[c]; return s == stateMissing || s == stateOutdated }
	switch strategy.Type {
	case RolloutProgressive:
		slots := max(int(strategy.MaxConcurrency), 1)
		for _, t := range targets {
			if state[t.cluster] == stateRolling {
				slots--
			}
		}
		for _, t := range targets {
			if !pending(t.cluster) {
				continue
			}
			if slots > 0 {
				apply = append(apply, t.cluster)
				slots--
			} else {
				waiting++
			}
		}
	case RolloutProgressivePerGroup:
		blocked := false
		for _, g := range groupsOf(targets) {
			unfinished := false
			for _, t := range g {
				switch {
				case pending(t.cluster) && blocked:
					waiting++
				case pending(t.cluster):
					apply = append(apply, t.cluster)
					unfinished = true
				case state[t.cluster] != stateDone:
					unfinished = true
				}
			}
			blocked = blocked || unfinished
		}
	default: // All
		for _, t := range targets {
			if pending(t.cluster) {
				apply = append(apply, t.cluster)
			}
		}
	}
	return apply, waiting
}

// groupsOf splits targets (ordered by group) into their decision groups.
func groupsOf(targets []target) [][]target {
	var out [][]target
	for i, t := range targets {
		if i == 0 || t.group != targets[i-1].group {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], t)
	}
	return out
}

func sortTargets(ts []target) {
	sort.Slice(ts, func(i, j int) bool {
		if ts[i].group != ts[j].group {
			return ts[i].group < ts[j].group
		}
		return ts[i].cluster < ts[j].cluster
	})
}
