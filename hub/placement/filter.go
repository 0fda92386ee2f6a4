package placement

import (
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// members selects a set's clusters as the ClusterSet controller counts them:
// its selector, or else the clusters labelled with its name.
func members(set *fleetv1.ClusterSet) (labels.Selector, error) {
	if set.Spec.ClusterSelector == nil {
		return labels.SelectorFromSet(labels.Set{fleetv1.LabelClusterSet: set.Name}), nil
	}
	return metav1.LabelSelectorAsSelector(set.Spec.ClusterSelector)
}

// setSelectors returns the selectors of the sets a placement draws from, and
// the named sets that do not exist or cannot be read.
func setSelectors(names []string, sets []fleetv1.ClusterSet) (sels []labels.Selector, problems []string) {
	byName := make(map[string]*fleetv1.ClusterSet, len(sets))
	for i := range sets {
		byName[sets[i].Name] = &sets[i]
	}
	if len(names) == 0 {
		for i := range sets {
			names = append(names, sets[i].Name)
		}
	}
	for _, n := range names {
		set, ok := byName[n]
		if !ok {
			problems = append(problems, fmt.Sprintf("cluster set %s does not exist", n))
			continue
		}
		sel, err := members(set)
		if err != nil {
			problems = append(problems, fmt.Sprintf("cluster set %s has an invalid selector: %v", n, err))
			continue
		}
		sels = append(sels, sel)
	}
	return sels, problems
}

// clusterPredicate is a compiled ClusterPredicate.
type clusterPredicate struct {
	labels labels.Selector
	claims []metav1.LabelSelectorRequirement
}

// checkClaimSelector checks claim requirements. Claim values are free text
// (e.g. linux/amd64), not label values, so they are matched as strings
// rather than through a label selector, which would refuse them.
func checkClaimSelector(reqs []metav1.LabelSelectorRequirement) error {
	for i, r := range reqs {
		if r.Key == "" {
			return fmt.Errorf("[%d]: key is required", i)
		}
		switch r.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
			if len(r.Values) == 0 {
				return fmt.Errorf("[%d]: operator %s needs values", i, r.Operator)
			}
		case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			if len(r.Values) > 0 {
				return fmt.Errorf("[%d]: operator %s takes no values", i, r.Operator)
			}
		default:
			return fmt.Errorf("[%d]: unknown operator %q", i, r.Operator)
		}
	}
	return nil
}

// matchClaims applies claim requirements as a label selector applies its
// own: all must hold; NotIn also holds for an absent claim.
func matchClaims(reqs []metav1.LabelSelectorRequirement, claims map[string]string) bool {
	for _, r := range reqs {
		v, ok := claims[r.Key]
		switch r.Operator {
		case metav1.LabelSelectorOpIn:
			if !ok || !slices.Contains(r.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpNotIn:
			if ok && slices.Contains(r.Values, v) {
				return false
			}
		case metav1.LabelSelectorOpExists:
			if !ok {
				return false
			}
		case metav1.LabelSelectorOpDoesNotExist:
			if ok {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// compilePredicates checks and compiles the placement's predicates.
func compilePredicates(ps []fleetv1.ClusterPredicate) ([]clusterPredicate, error) {
	out := make([]clusterPredicate, 0, len(ps))
	for i, p := range ps {
		c := clusterPredicate{labels: labels.Everything(), claims: p.ClaimSelector}
		if p.LabelSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(p.LabelSelector)
			if err != nil {
				return nil, fmt.Errorf("predicates[%d].labelSelector: %w", i, err)
			}
			c.labels = sel
		}
		if err := checkClaimSelector(p.ClaimSelector); err != nil {
			return nil, fmt.Errorf("predicates[%d].claimSelector%w", i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// matchPredicates: a cluster qualifies when any predicate selects it by both
// its labels and its claims; no predicates select every cluster.
func matchPredicates(ps []clusterPredicate, mc *fleetv1.ManagedCluster) bool {
	if len(ps) == 0 {
		return true
	}
	claims := make(map[string]string, len(mc.Status.ClusterClaims))
	for _, c := range mc.Status.ClusterClaims {
		claims[c.Name] = c.Value
	}
	for _, p := range ps {
		if p.labels.Matches(labels.Set(mc.Labels)) && matchClaims(p.claims, claims) {
			return true
		}
	}
	return false
}

// tolerates reports whether a toleration matches a taint, ignoring time.
func tolerates(tol fleetv1.Toleration, t fleetv1.Taint) bool {
	if tol.Effect != "" && tol.Effect != t.Effect {
		return false
	}
	switch tol.Operator {
	case "Exists":
		return tol.Key == "" || tol.Key == t.Key
	default: // Equal, the default
		return tol.Key == t.Key && tol.Value == t.Value
	}
}

// tolerated reports whether any toleration tolerates the taint at now, and,
// when only time-bound tolerations do, until when (zero: for good).
func tolerated(tols []fleetv1.Toleration, t fleetv1.Taint, now time.Time) (ok bool, until time.Time) {
	for _, tol := range tols {
		if !tolerates(tol, t) {
			continue
		}
		if tol.TolerationSeconds == nil {
			return true, time.Time{}
		}
		end := t.TimeAdded.Add(time.Duration(*tol.TolerationSeconds) * time.Second)
		if now.Before(end) && (!ok || end.After(until)) {
			ok, until = true, end
		}
	}
	return ok, until
}

// taintVerdict is what a cluster's taints say about one placement.
type taintVerdict struct {
	// blocked names the first taint that keeps the cluster out ("" if none).
	blocked string
	// fallback names an untolerated PreferNoSelect taint ("" if none): the
	// cluster is chosen only when no other candidate is left.
	fallback string
	// expires is the earliest time a toleration this verdict relies on runs
	// out (zero: none does).
	expires time.Time
}

// checkTaints applies a placement's tolerations to a cluster's taints.
// current says whether the placement holds the cluster now, which
// NoSelectIfNew taints spare.
func checkTaints(tols []fleetv1.Toleration, taints []fleetv1.Taint, current bool, now time.Time) taintVerdict {
	var v taintVerdict
	for _, t := range taints {
		if t.Effect == fleetv1.TaintNoSelectIfNew && current {
			continue
		}
		ok, until := tolerated(tols, t, now)
		if ok {
			if !until.IsZero() && (v.expires.IsZero() || until.Before(v.expires)) {
				v.expires = until
			}
			continue
		}
		switch t.Effect {
		case fleetv1.TaintPreferNoSelect:
			if v.fallback == "" {
				v.fallback = t.Key
			}
		default: // NoSelect, NoSelectIfNew, and effects this hub does not know
			if v.blocked == "" {
				v.blocked = t.Key
			}
		}
	}
	return v
}
