package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetpulse/fleetpulse/agent/policy/template"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// MaxHistory is how many verdict changes status keeps.
const MaxHistory = 10

// maxMessage bounds a history message; status is not a log.
const maxMessage = 1024

// reasonOrder orders a template message's parts.
var reasonOrder = []string{
	template.ReasonNotFound, template.ReasonNotAsSpecified, template.ReasonFound,
	ReasonCreated, ReasonUpdated, ReasonDeleted,
	template.ReasonFoundAsSpecified, template.ReasonMissingAsExpected,
}

// templateStatus is a template's status from its evaluation.
func templateStatus(r *run) fleetv1.TemplateStatus {
	st := fleetv1.TemplateStatus{Index: int32(r.index), Compliant: r.verdict()}
	if r.pending != "" {
		st.Message = r.pending
		if r.tmpl != nil {
			st.Message = r.tmpl.String() + ": " + r.pending
		}
		return st
	}
	namespaced := r.mapping.Scope.Name() == meta.RESTScopeNameNamespace
	for _, rs := range r.results {
		ro := fleetv1.RelatedObject{
			APIVersion: r.tmpl.GVK.GroupVersion().String(), Kind: r.tmpl.GVK.Kind, Name: rs.Name,
			Compliant: fleetv1.NonCompliant, Reason: rs.Reason, CreatedByPolicy: rs.created,
		}
		if namespaced {
			ro.Namespace = rs.Namespace
		}
		if rs.Compliant {
			ro.Compliant = fleetv1.Compliant
		}
		if r.tmpl.RecordDiff && len(rs.Diffs) > 0 {
			ro.Diff = template.Format(rs.Diffs)
		}
		st.RelatedObjects = append(st.RelatedObjects, ro)
	}
	st.Message = templateMessage(r, st.Compliant)
	if st.Message == "" && len(r.scopes) == 0 {
		st.Message = fmt.Sprintf("%s: the namespaceSelector selects no namespace", r.mapping.Resource.Resource)
	}
	return st
}

// templateMessage says what a template found, OCM-style: "networkpolicies
// [deny-all] not found in namespaces: team-a, team-b". A non-compliant
// template names only what is wrong.
func templateMessage(r *run, verdict fleetv1.ComplianceState) string {
	type group struct{ reason, names string }
	namespaces := map[group][]string{}
	var order []group
	var failures []string
	resource := r.mapping.Resource.Resource
	for _, rs := range r.results {
		if verdict == fleetv1.NonCompliant && rs.Compliant {
			continue
		}
		if rs.err != nil {
			failures = append(failures, fmt.Sprintf("%s [%s]%s: could not %v", resource, rs.Name, inNamespace([]string{rs.Namespace}), rs.err))
		}
		g := group{reason: rs.Reason, names: rs.Name}
		if _, ok := namespaces[g]; !ok {
			order = append(order, g)
		}
		namespaces[g] = append(namespaces[g], rs.Namespace)
	}
	// Objects of one reason in the same namespaces read as one list.
	type merged struct {
		reason string
		names  []string
		ns     string
	}
	var parts []merged
	for _, g := range order {
		ns := inNamespace(namespaces[g])
		i := slices.IndexFunc(parts, func(m merged) bool { return m.reason == g.reason && m.ns == ns })
		if i < 0 {
			parts = append(parts, merged{reason: g.reason, ns: ns})
			i = len(parts) - 1
		}
		if g.names != "" {
			parts[i].names = append(parts[i].names, g.names)
		}
	}
	slices.SortStableFunc(parts, func(a, b merged) int {
		return slices.Index(reasonOrder, a.reason) - slices.Index(reasonOrder, b.reason)
	})
	var out []string
	for _, m := range parts {
		names := ""
		if len(m.names) > 0 {
			slices.Sort(m.names)
			names = " [" + strings.Join(m.names, ", ") + "]"
		}
		out = append(out, resource+names+" "+m.reason+m.ns)
	}
	return strings.Join(append(out, failures...), "; ")
}

func inNamespace(nss []string) string {
	nss = slices.Compact(slices.Sorted(slices.Values(nss)))
	switch {
	case len(nss) == 0 || len(nss) == 1 && nss[0] == "":
		return ""
	case len(nss) == 1:
		return " in namespace " + nss[0]
	}
	return " in namespaces: " + strings.Join(nss, ", ")
}

// overall is the policy's verdict: NonCompliant if any template is, else
// Pending if any is, else Compliant.
func overall(templates []fleetv1.TemplateStatus) fleetv1.ComplianceState {
	out := fleetv1.Compliant
	for _, t := range templates {
		switch t.Compliant {
		case fleetv1.NonCompliant:
			return fleetv1.NonCompliant
		case fleetv1.Pending:
			out = fleetv1.Pending
		}
	}
	return out
}

// policyMessage sums up the templates: "NonCompliant; <what each found>".
func policyMessage(state fleetv1.ComplianceState, templates []fleetv1.TemplateStatus) string {
	var b strings.Builder
	b.WriteString(string(state))
	for _, t := range templates {
		if t.Message == "" {
			continue
		}
		if state != fleetv1.Compliant && t.Compliant == fleetv1.Compliant {
			continue // what is fine says nothing about what is not
		}
		b.WriteString("; ")
		b.WriteString(t.Message)
	}
	msg := b.String()
	if len(msg) > maxMessage {
		cut := maxMessage - len("…")
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

// buildStatus is the policy's new status: prev's history, with an event
// first when the verdict changed. changed reports that change.
func buildStatus(p *fleetv1.Policy, prev *fleetv1.PolicyStatus, templates []fleetv1.TemplateStatus, now time.Time) (st *fleetv1.PolicyStatus, changed bool) {
	state := overall(templates)
	st = &fleetv1.PolicyStatus{
		Compliant: state, Templates: templates, LastEvaluated: &metav1.Time{Time: now.Truncate(time.Second)},
		ObservedGeneration: p.Generation,
	}
	var prevState fleetv1.ComplianceState
	if prev != nil {
		prevState = prev.Compliant
		st.History = slices.Clone(prev.History)
	}
	if state != prevState {
		changed = true
		ev := fleetv1.ComplianceEvent{Time: metav1.Time{Time: now.Truncate(time.Second)}, Compliant: state, Message: policyMessage(state, templates)}
		st.History = append([]fleetv1.ComplianceEvent{ev}, st.History...)
		if len(st.History) > MaxHistory {
			st.History = st.History[:MaxHistory]
		}
	}
	return st, changed
}
