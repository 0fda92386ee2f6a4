package workset

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/intstr"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Rollout strategy types, failure strategies and rollback scopes.
const (
	RolloutAll                 = "All"
	RolloutProgressive         = "Progressive"
	RolloutProgressivePerGroup = "ProgressivePerGroup"

	FailurePause    = "Pause"
	FailureHalt     = "Halt"
	FailureRollback = "Rollback"

	RollbackStage = "Stage"
	RollbackAll   = "All"
)

// target is a cluster a placementRef decides.
type target struct {
	cluster string
	group   int
}

// refPlan is one placementRef: its strategy and the clusters it decides,
// ordered by decision group, then name.
type refPlan struct {
	name     string
	strategy fleetv1.RolloutStrategy
	targets  []target
	// pending says why the decisions may be incomplete ("" when they
	// are not).
	pending string
}

// stagePlan is one stage as cut when a rollout starts.
type stagePlan struct {
	name      string
	ref       string
	local     int32 // index among the ref's stages
	mandatory bool
	clusters  []string
}

// buildStages cuts the refs' clusters into stages: each ref in turn, its
// mandatory decision groups first (in the order listed), then the rest by
// its strategy. A mandatory group the placement does not have makes no
// stage.
func buildStages(refs []refPlan) []stagePlan {
	var out []stagePlan
	for _, ref := range refs {
		var local int32
		add := func(name string, mandatory bool, clusters []string) {
			if len(clusters) == 0 {
				return
			}
			out = append(out, stagePlan{name: ref.name + "/" + name, ref: ref.name, local: local, mandatory: mandatory, clusters: clusters})
			local++
		}
		groups := groupsOf(ref.targets)
		byIndex := map[int][]target{}
		for _, g := range groups {
			byIndex[g[0].group] = g
		}
		mandatory := map[int]bool{}
		for _, m := range ref.strategy.MandatoryDecisionGroups {
			g := int(m.GroupIndex)
			if mandatory[g] {
				continue
			}
			mandatory[g] = true
			add("mandatory-"+strconv.Itoa(g), true, names(byIndex[g]))
		}
		var rest []target
		for _, t := range ref.targets {
			if !mandatory[t.group] {
				rest = append(rest, t)
			}
		}
		switch ref.strategy.Type {
		case RolloutProgressive:
			size := sizeOf(ref.strategy.MaxConcurrency, len(ref.targets), 1, true)
			for i := 0; i < len(rest); i += size {
				add("batch-"+strconv.Itoa(int(local)), false, names(rest[i:min(i+size, len(rest))]))
			}
		case RolloutProgressivePerGroup:
			for _, g := range groupsOf(rest) {
				add("group-"+strconv.Itoa(g[0].group), false, names(g))
			}
		default:
			add("all", false, names(rest))
		}
	}
	return out
}

func names(ts []target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.cluster
	}
	return out
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
	slices.SortFunc(ts, func(a, b target) int {
		if a.group != b.group {
			return a.group - b.group
		}
		return strings.Compare(a.cluster, b.cluster)
	})
}

// sizeOf resolves a count or percentage of total; a percentage rounds up
// (as Open Cluster Management's rollouts do). Unset gives def; a window
// size (atLeastOne) is never below 1.
func sizeOf(v *intstr.IntOrString, total, def int, atLeastOne bool) int {
	n := def
	if v != nil {
		switch v.Type {
		case intstr.Int:
			n = v.IntValue()
		case intstr.String:
			pct, err := strconv.ParseFloat(strings.TrimSuffix(v.StrVal, "%"), 64)
			if err == nil && strings.HasSuffix(v.StrVal, "%") {
				n = int(math.Ceil(pct / 100 * float64(total)))
			}
		}
	}
	if atLeastOne {
		n = max(n, 1)
	}
	return max(n, 0)
}

// validSize checks a count or percentage field.
func validSize(field string, v *intstr.IntOrString) error {
	if v == nil || v.Type == intstr.Int {
		if v != nil && v.IntValue() < 0 {
			return fmt.Errorf("%s %d: want a count of 0 or more", field, v.IntValue())
		}
		return nil
	}
	pct, err := strconv.ParseFloat(strings.TrimSuffix(v.StrVal, "%"), 64)
	if err != nil || !strings.HasSuffix(v.StrVal, "%") || pct < 0 || pct > 100 {
		return fmt.Errorf("%s %q: want a count or a percentage such as 10%%", field, v.StrVal)
	}
	return nil
}

// failureBudget is how many of a stage's clusters may fail, with the
// failures already spent on the ref's earlier stages when the budget is
// the ref's (Progressive, All): mandatory stages none; ProgressivePerGroup
// maxFailures of the group; otherwise maxFailures of the ref's clusters.
func failureBudget(s fleetv1.RolloutStrategy, mandatory bool, stageSize, refSize int) int {
	switch {
	case mandatory:
		return 0
	case s.Type == RolloutProgressivePerGroup:
		return sizeOf(s.MaxFailures, stageSize, 0, false)
	default:
		return sizeOf(s.MaxFailures, refSize, 0, false)
	}
}
