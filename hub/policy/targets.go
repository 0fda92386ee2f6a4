package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// rootKey is the label value naming a root policy: <namespace>.<name>
// (namespaces have no dots, so the first dot splits it).
func rootKey(namespace, name string) string { return namespace + "." + name }

func splitRootKey(key string) (namespace, name string, ok bool) {
	namespace, name, ok = strings.Cut(key, ".")
	return namespace, name, ok && namespace != "" && name != ""
}

// target is one cluster a root policy reaches, and how.
type target struct {
	enforce bool   // a binding override or an alert raises it to enforce
	why     string // what raised it, for status
}

// targets reads which clusters the root policy reaches: the decisions of
// every binding of its namespace that names the policy or a set holding it.
// Missing placements and sets are reported, not fatal: the rest still
// propagates.
func (r *reconciler) targets(ctx context.Context, root *fleetv1.Policy) (map[string]target, []string, error) {
	out := map[string]target{}
	var notes []string
	if root.Spec.Disabled {
		return out, []string{"disabled"}, nil
	}
	var sets fleetv1.PolicySetList
	if err := r.client.List(ctx, &sets, client.InNamespace(root.Namespace)); err != nil {
		return nil, nil, fmt.Errorf("list policy sets: %w", err)
	}
	inSet := map[string]bool{}
	for _, s := range sets.Items {
		if slices.Contains(s.Spec.Policies, root.Name) {
			inSet[s.Name] = true
		}
	}
	var bindings fleetv1.PlacementBindingList
	if err := r.client.List(ctx, &bindings, client.InNamespace(root.Namespace)); err != nil {
		return nil, nil, fmt.Errorf("list placement bindings: %w", err)
	}
	for _, b := range bindings.Items {
		if !bindsPolicy(&b, root.Name, inSet) {
			continue
		}
		clusters, err := r.decided(ctx, root.Namespace, b.PlacementRef.Name)
		if apierrors.IsNotFound(err) {
			notes = append(notes, fmt.Sprintf("binding %s: placement %s not found", b.Name, b.PlacementRef.Name))
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		enforce := strings.EqualFold(string(b.BindingOverrides.RemediationAction), string(fleetv1.RemediationEnforce))
		for _, c := range clusters {
			t := out[c]
			if enforce && !t.enforce {
				t = target{enforce: true, why: "binding " + b.Name}
			}
			out[c] = t
		}
	}
	return out, notes, nil
}

// bindsPolicy reports whether the binding names the policy or a set that
// holds it.
func bindsPolicy(b *fleetv1.PlacementBinding, policy string, inSet map[string]bool) bool {
	for _, s := range b.Subjects {
		switch s.Kind {
		case "Policy":
			if s.Name == policy {
				return true
			}
		case "PolicySet":
			if inSet[s.Name] {
				return true
			}
		}
	}
	return false
}

// decided lists the clusters a Placement decides, NotFound when it is
// missing.
func (r *reconciler) decided(ctx context.Context, namespace, placement string) ([]string, error) {
	if err := r.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: placement}, &fleetv1.Placement{}); err != nil {
		return nil, err
	}
	var ds fleetv1.PlacementDecisionList
	if err := r.client.List(ctx, &ds, client.InNamespace(namespace), client.MatchingLabels{fleetv1.LabelPlacement: placement}); err != nil {
		return nil, fmt.Errorf("list decisions of placement %s: %w", placement, err)
	}
	var out []string
	for _, d := range ds.Items {
		for _, cd := range d.Status.Decisions {
			if cd.ClusterName != "" {
				out = append(out, cd.ClusterName)
			}
		}
	}
	return out, nil
}

// alertEnforced adds the clusters on which an AlertRemediation enforces the
// root policy now (dry runs only record).
func (r *reconciler) alertEnforced(ctx context.Context, root *fleetv1.Policy, targets map[string]target) error {
	var rules fleetv1.AlertRemediationList
	if err := r.client.List(ctx, &rules); err != nil {
		return fmt.Errorf("list alert remediations: %w", err)
	}
	for _, rule := range rules.Items {
		if rule.Spec.PolicyRef.Namespace != root.Namespace || rule.Spec.PolicyRef.Name != root.Name || rule.Spec.DryRun {
			continue
		}
		for _, c := range rule.Status.Clusters {
			t, bound := targets[c.Cluster]
			if !bound || (c.State != fleetv1.RemediationStateEnforcing && c.State != fleetv1.RemediationStateResolved) || t.enforce {
				continue
			}
			targets[c.Cluster] = target{enforce: true, why: "alert remediation " + rule.Name}
		}
	}
	return nil
}
