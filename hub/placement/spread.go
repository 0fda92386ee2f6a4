package placement

import (
	"fmt"
	"strings"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Topology key types of a spread constraint.
const (
	TopologyKeyLabel = "Label"
	TopologyKeyClaim = "Claim"
)

// spreadRule is one spread constraint over the pass's candidates.
//
// Its domains are the values of the topology key among the candidates. A
// candidate without the key belongs to no domain: the rule neither counts
// nor limits it. A selection meets the rule when no domain holds more than
// maxSkew clusters above the least-selected open domain, a domain being
// open while it has candidates left unselected. A domain whose candidates
// are all selected cannot do better, so it does not hold the others back:
// 1 cluster in zone a and 5 in zone b, 4 wanted, selects a's one and 3 of
// b's.
type spreadRule struct {
	name    string // "label zone", "claim region"
	maxSkew int
	domain  map[string]string // candidate → value
	size    map[string]int    // value → candidates
	count   map[string]int    // value → selected
}

// spreadRules compiles a placement's spread constraints over its candidates;
// invalid constraints are reported and ignored.
func spreadRules(cs []fleetv1.SpreadConstraint, cands map[string]*fleetv1.ManagedCluster) (spread, []string) {
	var rules spread
	var problems []string
	for i, c := range cs {
		var value func(*fleetv1.ManagedCluster) (string, bool)
		switch c.TopologyKeyType {
		case TopologyKeyLabel:
			value = func(mc *fleetv1.ManagedCluster) (string, bool) { v, ok := mc.Labels[c.TopologyKey]; return v, ok }
		case TopologyKeyClaim:
			value = func(mc *fleetv1.ManagedCluster) (string, bool) {
				for _, cl := range mc.Status.ClusterClaims {
					if cl.Name == c.TopologyKey {
						return cl.Value, true
					}
				}
				return "", false
			}
		default:
			problems = append(problems, fmt.Sprintf("spreadConstraints[%d]: topologyKeyType %q is neither Label nor Claim", i, c.TopologyKeyType))
			continue
		}
		if c.TopologyKey == "" {
			problems = append(problems, fmt.Sprintf("spreadConstraints[%d]: topologyKey is empty", i))
			continue
		}
		r := &spreadRule{name: strings.ToLower(c.TopologyKeyType) + " " + c.TopologyKey, maxSkew: max(int(c.MaxSkew), 1),
			domain: map[string]string{}, size: map[string]int{}, count: map[string]int{}}
		for name, mc := range cands {
			if v, ok := value(mc); ok {
				r.domain[name] = v
				r.size[v]++
			}
		}
		rules = append(rules, r)
	}
	return rules, problems
}

// excess is by how many clusters the selection counted in r.count exceeds
// maxSkew, summed over the domains; 0 meets the rule.
func (r *spreadRule) excess() int {
	low := -1
	for v, n := range r.size {
		if c := r.count[v]; c < n && (low < 0 || c < low) {
			low = c
		}
	}
	if low < 0 {
		return 0
	}
	ex := 0
	for _, c := range r.count {
		ex += max(c-low-r.maxSkew, 0)
	}
	return ex
}

// describe lists the selected clusters per domain, for messages.
func (r *spreadRule) describe() string {
	vals := sortedKeys(r.size)
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = fmt.Sprintf("%s=%d", v, r.count[v])
	}
	return strings.Join(parts, " ")
}

// spread tracks a selection against every rule.
type spread []*spreadRule

func (s spread) add(name string, d int) {
	for _, r := range s {
		if v, ok := r.domain[name]; ok {
			r.count[v] += d
		}
	}
}

func (s spread) excess() int {
	ex := 0
	for _, r := range s {
		ex += r.excess()
	}
	return ex
}

// excessWith is the excess of the selection with in added and out removed
// (either may be empty).
func (s spread) excessWith(in, out string) int {
	if len(s) == 0 {
		return 0
	}
	if in != "" {
		s.add(in, 1)
		defer s.add(in, -1)
	}
	if out != "" {
		s.add(out, -1)
		defer s.add(out, 1)
	}
	return s.excess()
}

// key is the cluster's domain under every rule: clusters of the same key
// are interchangeable as far as spreading goes.
func (s spread) key(name string) string {
	var b strings.Builder
	for _, r := range s {
		v, ok := r.domain[name]
		if ok {
			b.WriteString("=")
			b.WriteString(v)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// repairSwap finds the swap of a selected cluster for a candidate that
// lowers the excess the most: among equals, the worst selected cluster for
// the best candidate. kept and rest are sorted best first. It returns
// indices into kept and rest, or ok false when no swap lowers the excess.
func (s spread) repairSwap(kept, rest []string) (wi, ci int, ok bool) {
	// Only the worst selected and the best unselected cluster of each
	// domain key can matter.
	var ws, cs []int
	seen := map[string]bool{}
	for i := len(kept) - 1; i >= 0; i-- {
		if k := s.key(kept[i]); !seen[k] {
			seen[k] = true
			ws = append(ws, i)
		}
	}
	seen = map[string]bool{}
	for j, c := range rest {
		if k := s.key(c); !seen[k] {
			seen[k] = true
			cs = append(cs, j)
		}
	}
	best := s.excess()
	for _, i := range ws {
		for _, j := range cs {
			if ex := s.excessWith(rest[j], kept[i]); ex < best {
				best, wi, ci, ok = ex, i, j, true
			}
		}
	}
	return wi, ci, ok
}

// unmet describes the rules the selection does not meet.
func (s spread) unmet() []string {
	var out []string
	for _, r := range s {
		if r.excess() > 0 {
			out = append(out, fmt.Sprintf("spread over %s not met (maxSkew %d): %s", r.name, r.maxSkew, r.describe()))
		}
	}
	return out
}
