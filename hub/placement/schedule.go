package placement

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Reasons recorded in ClusterDecisions.
const (
	// ReasonSelected: chosen to fill the decision.
	ReasonSelected = "Selected"
	// ReasonRescheduled: replaced a selected cluster it beat by more than the
	// hysteresis.
	ReasonRescheduled = "Rescheduled"
	// ReasonFallback: chosen despite an untolerated PreferNoSelect taint, for
	// want of other candidates.
	ReasonFallback = "PreferNoSelectFallback"
)

// input is everything one scheduling pass reads.
type input struct {
	placement *fleetv1.Placement
	clusters  []fleetv1.ManagedCluster
	sets      []fleetv1.ClusterSet
	// current is the placement's decision now, by cluster.
	current map[string]fleetv1.ClusterDecision
	// others counts, per cluster, the decisions of every other placement.
	others map[string]int
	// promQL holds each PromQL prioritizer's values by configuration index.
	promQL map[int]map[string]float64
	// scoreErrors are failures of PromQL prioritizers: with any, nothing
	// moves on scores in this pass.
	scoreErrors []string
	now         time.Time
}

// move is a cluster entering or leaving the decision, and why.
type move struct {
	cluster string
	score   int64
	why     string
}

// result is a scheduling pass's outcome.
type result struct {
	// selected is the new decision, sorted by name.
	selected []fleetv1.ClusterDecision
	// want is how many clusters the placement asks for (the qualifying ones
	// without numberOfClusters); qualifying how many qualify.
	want, qualifying int
	// explicit: the placement sets numberOfClusters.
	explicit bool
	// excluded says why each cluster of the placement's sets does not
	// qualify.
	excluded map[string]string
	// added and removed are the changes against the current decision;
	// swaps pairs the removals and additions that scores caused.
	added, removed []move
	swaps          [][2]move
	// rescheduled: scores moved the decision (lastRescheduleTime advances).
	rescheduled bool
	// held: scores would move the decision but minInterval has not passed
	// since the last such move.
	held bool
	// requeueAfter is when the decision may change with nothing else
	// changing: a toleration running out, or minInterval passing.
	requeueAfter time.Duration
	// problems are spec or scoring problems worth reporting.
	problems []string
	// totals are the candidates' total scores.
	totals map[string]int64
}

func inSets(sels []labels.Selector, mc *fleetv1.ManagedCluster) bool {
	for _, s := range sels {
		if s.Matches(labels.Set(mc.Labels)) {
			return true
		}
	}
	return false
}

// schedule computes a placement's decision. preds are the placement's
// compiled predicates (compilePredicates).
func schedule(in input, preds []clusterPredicate) result {
	p := in.placement
	r := result{excluded: map[string]string{}}
	sels, problems := setSelectors(p.Spec.ClusterSets, in.sets)
	r.problems = append(r.problems, problems...)
	ps, problems := prioritizers(p.Spec.PrioritizerPolicy)
	r.problems = append(r.problems, problems...)
	r.problems = append(r.problems, in.scoreErrors...)

	cands := map[string]*fleetv1.ManagedCluster{}
	tier := map[string]int{}
	fallbackTaint := map[string]string{}
	gone := map[string]string{} // current clusters that no longer qualify
	var expires time.Time
	present := map[string]bool{}
	for i := range in.clusters {
		mc := &in.clusters[i]
		present[mc.Name] = true
		_, current := in.current[mc.Name]
		if !inSets(sels, mc) {
			if current {
				gone[mc.Name] = "no longer in the placement's cluster sets"
			}
			continue
		}
		why := ""
		switch {
		case mc.DeletionTimestamp != nil:
			why = "being deleted"
		case !mc.Spec.Accepted:
			why = "not accepted"
		case !matchPredicates(preds, mc):
			why = "not matched by predicates"
		default:
			v := checkTaints(p.Spec.Tolerations, mc.Spec.Taints, current, in.now)
			if v.blocked != "" {
				why = "taint " + v.blocked
				break
			}
			if !v.expires.IsZero() && (expires.IsZero() || v.expires.Before(expires)) {
				expires = v.expires
			}
			cands[mc.Name] = mc
			if v.fallback != "" {
				tier[mc.Name], fallbackTaint[mc.Name] = 1, v.fallback
			}
		}
		if why != "" {
			r.excluded[mc.Name] = why
			if current {
				gone[mc.Name] = why
			}
		}
	}
	for name := range in.current {
		if !present[name] {
			gone[name] = "deleted"
		}
	}

	isCurrent := make(map[string]bool, len(in.current))
	for n := range in.current {
		isCurrent[n] = true
	}
	t := score(ps, cands, isCurrent, in.others, in.promQL)
	r.totals = t.total
	r.qualifying = len(cands)
	r.want = len(cands)
	if p.Spec.NumberOfClusters != nil {
		r.want, r.explicit = int(*p.Spec.NumberOfClusters), true
	}
	better := func(a, b string) bool {
		if tier[a] != tier[b] {
			return tier[a] < tier[b]
		}
		if t.total[a] != t.total[b] {
			return t.total[a] > t.total[b]
		}
		return a < b
	}

	for _, name := range sortedKeys(gone) {
		r.removed = append(r.removed, move{cluster: name, score: int64(in.current[name].Score), why: gone[name]})
	}
	var kept, rest []string
	for name := range cands {
		if isCurrent[name] {
			kept = append(kept, name)
		} else {
			rest = append(rest, name)
		}
	}
	sort.Slice(kept, func(i, j int) bool { return better(kept[i], kept[j]) })
	sort.Slice(rest, func(i, j int) bool { return better(rest[i], rest[j]) })
	reason := map[string]string{}
	choose := func(c string) {
		reason[c] = ReasonSelected
		if tier[c] > 0 {
			reason[c] = ReasonFallback
		}
	}
	sp, problems := spreadRules(p.Spec.SpreadPolicy.SpreadConstraints, cands)
	r.problems = append(r.problems, problems...)
	for _, k := range kept {
		sp.add(k, 1)
	}
	// swap replaces kept[i] by rest[j], keeping both sorted.
	swap := func(i, j int) (w, c string) {
		w, c = kept[i], rest[j]
		kept = slices.Delete(kept, i, i+1)
		rest = slices.Delete(rest, j, j+1)
		kept = insertSorted(kept, c, better)
		rest = insertSorted(rest, w, better)
		sp.add(w, -1)
		sp.add(c, 1)
		return w, c
	}

	// Fewer wanted: drop the worst, or rather the worst whose leaving
	// spreads the rest best.
	for len(kept) > r.want {
		i := bestIndex(len(kept), true, func(i int) int { return sp.excessWith("", kept[i]) })
		w := kept[i]
		kept = slices.Delete(kept, i, i+1)
		rest = insertSorted(rest, w, better)
		sp.add(w, -1)
		r.removed = append(r.removed, move{cluster: w, score: t.total[w], why: fmt.Sprintf("numberOfClusters is %d", r.want)})
	}
	// Fill from the best of the rest that spreads best.
	for len(kept) < r.want && len(rest) > 0 {
		j := bestIndex(len(rest), false, func(j int) int { return sp.excessWith(rest[j], "") })
		c := rest[j]
		rest = slices.Delete(rest, j, j+1)
		kept = insertSorted(kept, c, better)
		sp.add(c, 1)
		choose(c)
	}
	// The spread constraints move selected clusters at once, as few as they
	// must.
	for {
		i, j, ok := sp.repairSwap(kept, rest)
		if !ok {
			break
		}
		w, c := swap(i, j)
		choose(c)
		r.removed = append(r.removed, move{cluster: w, score: t.total[w], why: "spread constraints make room for " + c})
	}
	r.problems = append(r.problems, sp.unmet()...)
	// A selected cluster behind an untolerated PreferNoSelect taint gives way
	// to any untainted candidate at once, unless the spread would suffer.
	for {
		i, j, ok := findSwap(kept, rest, func(w, c string) (bool, bool) {
			if tier[w] <= tier[c] {
				return false, false
			}
			return sp.excessWith(c, w) <= sp.excess(), false
		})
		if !ok {
			break
		}
		w, c := swap(i, j)
		choose(c)
		r.removed = append(r.removed, move{cluster: w, score: t.total[w], why: "taint " + fallbackTaint[w] + " (PreferNoSelect) and " + c + " is not tainted"})
	}
	// Scores move the decision only by more than the hysteresis, at most
	// once per minInterval, and only where the spread allows.
	hyst := max(int64(p.Spec.Rescheduling.Hysteresis), 0)
	for {
		i, j, ok := findSwap(kept, rest, func(w, c string) (bool, bool) {
			if tier[w] != tier[c] {
				return false, false
			}
			if t.total[c]-t.total[w] <= hyst {
				return false, true
			}
			return sp.excessWith(c, w) <= sp.excess(), false
		})
		if !ok || len(in.scoreErrors) > 0 {
			break
		}
		if last := p.Status.LastRescheduleTime; last != nil {
			if next := last.Add(p.Spec.Rescheduling.MinInterval.Duration); in.now.Before(next) {
				r.held = true
				r.requeueAfter = next.Sub(in.now)
				break
			}
		}
		w, c := swap(i, j)
		reason[c] = ReasonRescheduled
		out := move{cluster: w, score: t.total[w], why: fmt.Sprintf("%s scores %d, more than %d above %d", c, t.total[c], hyst, t.total[w])}
		r.removed = append(r.removed, out)
		r.swaps = append(r.swaps, [2]move{out, {cluster: c, score: t.total[c], why: ReasonRescheduled}})
		r.rescheduled = true
	}

	sort.Strings(kept)
	final := make(map[string]bool, len(kept))
	for _, name := range kept {
		final[name] = true
		if d, ok := in.current[name]; ok {
			// A kept cluster keeps its reason; its score follows the
			// cluster's, except in a pass whose PromQL scores failed, which
			// knows only part of it.
			if len(in.scoreErrors) == 0 {
				d.Score = fleetv1.DecisionScore(t.total[name])
			}
			r.selected = append(r.selected, d)
			continue
		}
		r.selected = append(r.selected, fleetv1.ClusterDecision{ClusterName: name, Reason: reason[name], Score: fleetv1.DecisionScore(t.total[name])})
		r.added = append(r.added, move{cluster: name, score: t.total[name], why: reason[name]})
	}
	// A cluster may leave and come back, or come and leave, within a pass:
	// report only what changed against the current decision.
	leftNow := func(name string) bool { _, ok := in.current[name]; return ok && !final[name] }
	r.removed = slices.DeleteFunc(r.removed, func(m move) bool { return !leftNow(m.cluster) })
	r.swaps = slices.DeleteFunc(r.swaps, func(s [2]move) bool { return !leftNow(s[0].cluster) || !final[s[1].cluster] })
	if !expires.IsZero() {
		if d := expires.Sub(in.now); r.requeueAfter == 0 || d < r.requeueAfter {
			r.requeueAfter = d
		}
	}
	return r
}

// bestIndex returns the index in [0, n) of the lowest excess, the first
// such from the end when fromEnd, else from the start; it stops at the first
// 0.
func bestIndex(n int, fromEnd bool, excess func(int) int) int {
	best, at := -1, 0
	for k := range n {
		i := k
		if fromEnd {
			i = n - 1 - k
		}
		ex := excess(i)
		if best < 0 || ex < best {
			best, at = ex, i
		}
		if ex == 0 {
			break
		}
	}
	return at
}

// findSwap looks for a selected cluster to give way to a candidate: the
// candidates best first, each against the selected clusters worst first.
// ok says whether the pair swaps; stop ends the search for that candidate.
func findSwap(kept, rest []string, try func(w, c string) (ok, stop bool)) (int, int, bool) {
	for j, c := range rest {
		for i := len(kept) - 1; i >= 0; i-- {
			ok, stop := try(kept[i], c)
			if ok {
				return i, j, true
			}
			if stop {
				break
			}
		}
	}
	return 0, 0, false
}

func insertSorted(s []string, v string, less func(a, b string) bool) []string {
	i := sort.Search(len(s), func(i int) bool { return less(v, s[i]) })
	s = append(s, "")
	copy(s[i+1:], s[i:])
	s[i] = v
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// satisfied reports whether the pass selected what the placement asks for.
func (r result) satisfied() bool {
	if !r.explicit && r.qualifying == 0 {
		return false
	}
	return len(r.selected) >= r.want
}

// message explains the decision: how many were selected of how many wanted,
// and why the clusters of the placement's sets that were left out were.
func (r result) message() string {
	var b strings.Builder
	if !r.explicit && r.qualifying == 0 {
		b.WriteString("no cluster qualifies")
	} else {
		fmt.Fprintf(&b, "%d of %d selected", len(r.selected), r.want)
	}
	byWhy := map[string]int{}
	for _, why := range r.excluded {
		byWhy[why]++
	}
	for _, why := range sortedKeys(byWhy) {
		verb := "excluded by "
		if !strings.HasPrefix(why, "taint ") {
			verb = ""
		}
		fmt.Fprintf(&b, "; %d %s%s", byWhy[why], verb, why)
	}
	if r.held {
		b.WriteString("; a better-scoring cluster waits for minInterval")
	}
	for _, p := range r.problems {
		b.WriteString("; ")
		b.WriteString(p)
	}
	return b.String()
}
