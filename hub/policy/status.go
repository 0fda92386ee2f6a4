package policy

import (
	"strings"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// summarise is a root policy's status from its replicas: each reached
// cluster's verdict, the counts, and the overall verdict. Conditions are
// the caller's.
func summarise(root *fleetv1.Policy, targets map[string]target, replicas map[string]*fleetv1.Policy) *fleetv1.PolicyStatus {
	st := &fleetv1.PolicyStatus{Summary: &fleetv1.ComplianceSummary{}}
	var verdicts []fleetv1.ComplianceState
	for _, c := range sortedKeys(targets) {
		cc := fleetv1.ClusterCompliance{Cluster: c, Compliant: fleetv1.Pending, RemediationAction: root.Spec.RemediationAction}
		if p := replicas[c]; p != nil {
			cc.RemediationAction = p.Spec.RemediationAction
			if p.Status.Compliant != "" && p.Status.ObservedGeneration == p.Generation {
				cc.Compliant = p.Status.Compliant
			}
			if len(p.Status.History) > 0 {
				cc.Message = p.Status.History[0].Message
			}
		}
		if cc.RemediationAction == "" {
			cc.RemediationAction = fleetv1.RemediationInform
		}
		cc.RemediationAction = fleetv1.RemediationAction(strings.ToLower(string(cc.RemediationAction)))
		st.Clusters = append(st.Clusters, cc)
		verdicts = append(verdicts, cc.Compliant)
		st.Summary.Clusters++
		switch cc.Compliant {
		case fleetv1.Compliant:
			st.Summary.Compliant++
		case fleetv1.NonCompliant:
			st.Summary.NonCompliant++
		default:
			st.Summary.Pending++
		}
	}
	st.Compliant = worst(verdicts)
	return st
}

// worst is NonCompliant if any verdict is, else Pending if any is, else
// Compliant; no verdicts give none.
func worst(verdicts []fleetv1.ComplianceState) fleetv1.ComplianceState {
	if len(verdicts) == 0 {
		return ""
	}
	out := fleetv1.Compliant
	for _, v := range verdicts {
		switch v {
		case fleetv1.NonCompliant:
			return fleetv1.NonCompliant
		case fleetv1.Compliant:
		default:
			out = fleetv1.Pending
		}
	}
	return out
}
