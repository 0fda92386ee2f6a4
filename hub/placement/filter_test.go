package placement

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestCheckTaints(t *testing.T) {
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	added := metav1.NewTime(now.Add(-30 * time.Second))
	unreachable := fleetv1.Taint{Key: fleetv1.TaintUnreachable, Effect: fleetv1.TaintNoSelect, TimeAdded: added}
	for _, tc := range []struct {
		name     string
		tols     []fleetv1.Toleration
		taints   []fleetv1.Taint
		current  bool
		blocked  string
		fallback string
		expires  time.Time
	}{
		{name: "no taints"},
		{name: "NoSelect untolerated", taints: []fleetv1.Taint{unreachable}, blocked: fleetv1.TaintUnreachable},
		{name: "NoSelect untolerated even when current", taints: []fleetv1.Taint{unreachable}, current: true, blocked: fleetv1.TaintUnreachable},
		{name: "NoSelect tolerated by key", taints: []fleetv1.Taint{unreachable},
			tols: []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists"}}},
		{name: "Equal needs the value", taints: []fleetv1.Taint{{Key: "gpu", Value: "a100", Effect: fleetv1.TaintNoSelect}},
			tols: []fleetv1.Toleration{{Key: "gpu", Value: "h100"}}, blocked: "gpu"},
		{name: "Equal with the value", taints: []fleetv1.Taint{{Key: "gpu", Value: "a100", Effect: fleetv1.TaintNoSelect}},
			tols: []fleetv1.Toleration{{Key: "gpu", Operator: "Equal", Value: "a100"}}},
		{name: "empty key with Exists tolerates everything", taints: []fleetv1.Taint{unreachable, {Key: "x", Effect: fleetv1.TaintPreferNoSelect}},
			tols: []fleetv1.Toleration{{Operator: "Exists"}}},
		{name: "effect must match", taints: []fleetv1.Taint{unreachable},
			tols: []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists", Effect: fleetv1.TaintPreferNoSelect}}, blocked: fleetv1.TaintUnreachable},
		{name: "tolerationSeconds not yet run out", taints: []fleetv1.Taint{unreachable},
			tols:    []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists", TolerationSeconds: ptr.To[int64](60)}},
			expires: added.Add(60 * time.Second)},
		{name: "tolerationSeconds run out", taints: []fleetv1.Taint{unreachable},
			tols:    []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists", TolerationSeconds: ptr.To[int64](20)}},
			blocked: fleetv1.TaintUnreachable},
		{name: "an unbounded toleration wins over a bounded one", taints: []fleetv1.Taint{unreachable},
			tols: []fleetv1.Toleration{{Key: fleetv1.TaintUnreachable, Operator: "Exists", TolerationSeconds: ptr.To[int64](60)},
				{Key: fleetv1.TaintUnreachable, Operator: "Exists"}}},
		{name: "a taint without timeAdded counts as old", taints: []fleetv1.Taint{{Key: "k", Effect: fleetv1.TaintNoSelect}},
			tols: []fleetv1.Toleration{{Key: "k", Operator: "Exists", TolerationSeconds: ptr.To[int64](3600)}}, blocked: "k"},
		{name: "NoSelectIfNew keeps out a new cluster", taints: []fleetv1.Taint{{Key: "drain", Effect: fleetv1.TaintNoSelectIfNew}}, blocked: "drain"},
		{name: "NoSelectIfNew spares a current cluster", taints: []fleetv1.Taint{{Key: "drain", Effect: fleetv1.TaintNoSelectIfNew}}, current: true},
		{name: "NoSelectIfNew tolerated", taints: []fleetv1.Taint{{Key: "drain", Effect: fleetv1.TaintNoSelectIfNew}},
			tols: []fleetv1.Toleration{{Key: "drain", Operator: "Exists"}}},
		{name: "PreferNoSelect makes a fallback", taints: []fleetv1.Taint{{Key: "busy", Effect: fleetv1.TaintPreferNoSelect}}, fallback: "busy"},
		{name: "PreferNoSelect tolerated", taints: []fleetv1.Taint{{Key: "busy", Effect: fleetv1.TaintPreferNoSelect}},
			tols: []fleetv1.Toleration{{Key: "busy", Operator: "Exists"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := checkTaints(tc.tols, tc.taints, tc.current, now)
			if v.blocked != tc.blocked || v.fallback != tc.fallback || !v.expires.Equal(tc.expires) {
				t.Errorf("checkTaints = %+v, want blocked %q fallback %q expires %s", v, tc.blocked, tc.fallback, tc.expires)
			}
		})
	}
}

func TestPredicates(t *testing.T) {
	mc := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Name: "a", Labels: map[string]string{"env": "prod", "region": "eu"}},
		Status: fleetv1.ManagedClusterStatus{ClusterClaims: []fleetv1.ClusterClaim{{Name: "platform.fleetpulse.io", Value: "linux/amd64"}}}}
	claim := func(op metav1.LabelSelectorOperator, vals ...string) []metav1.LabelSelectorRequirement {
		return []metav1.LabelSelectorRequirement{{Key: "platform.fleetpulse.io", Operator: op, Values: vals}}
	}
	for _, tc := range []struct {
		name  string
		preds []fleetv1.ClusterPredicate
		want  bool
	}{
		{name: "none selects all", want: true},
		{name: "label match", preds: []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}}}, want: true},
		{name: "label mismatch", preds: []fleetv1.ClusterPredicate{{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}}}},
		{name: "claim match", preds: []fleetv1.ClusterPredicate{{ClaimSelector: claim(metav1.LabelSelectorOpIn, "linux/amd64")}}, want: true},
		{name: "claim mismatch", preds: []fleetv1.ClusterPredicate{{ClaimSelector: claim(metav1.LabelSelectorOpIn, "linux/arm64")}}},
		{name: "label and claim both needed", preds: []fleetv1.ClusterPredicate{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
			ClaimSelector: claim(metav1.LabelSelectorOpNotIn, "linux/amd64")}}},
		{name: "any predicate suffices", preds: []fleetv1.ClusterPredicate{
			{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "dev"}}},
			{ClaimSelector: claim(metav1.LabelSelectorOpExists)}}, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := compilePredicates(tc.preds)
			if err != nil {
				t.Fatal(err)
			}
			if got := matchPredicates(ps, mc); got != tc.want {
				t.Errorf("matchPredicates = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := compilePredicates([]fleetv1.ClusterPredicate{{ClaimSelector: claim("Bogus", "x")}}); err == nil {
		t.Error("an invalid claim selector compiled")
	}
}

func TestSetSelectors(t *testing.T) {
	sets := []fleetv1.ClusterSet{
		{ObjectMeta: metav1.ObjectMeta{Name: "prod"}},
		{ObjectMeta: metav1.ObjectMeta{Name: "eu"}, Spec: fleetv1.ClusterSetSpec{ClusterSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"region": "eu"}}}},
	}
	inProd := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{fleetv1.LabelClusterSet: "prod"}}}
	inEU := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"region": "eu"}}}
	inNone := &fleetv1.ManagedCluster{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{fleetv1.LabelClusterSet: "dev"}}}
	for _, tc := range []struct {
		name                 string
		names                []string
		prod, eu, none, prob bool
	}{
		{name: "empty means every set", prod: true, eu: true},
		{name: "by label", names: []string{"prod"}, prod: true},
		{name: "by selector", names: []string{"eu"}, eu: true},
		{name: "a missing set selects nothing and is reported", names: []string{"dev"}, prob: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sels, problems := setSelectors(tc.names, sets)
			if got := inSets(sels, inProd); got != tc.prod {
				t.Errorf("prod member selected = %v", got)
			}
			if got := inSets(sels, inEU); got != tc.eu {
				t.Errorf("eu member selected = %v", got)
			}
			if got := inSets(sels, inNone); got != tc.none {
				t.Errorf("a cluster of no existing set selected = %v", got)
			}
			if (len(problems) > 0) != tc.prob {
				t.Errorf("problems = %v", problems)
			}
		})
	}
}
