package policy_test

import (
	"context"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestPrune: a deleting policy that prunes DeleteIfCreated removes what it
// created and leaves what it found; DeleteAll removes every object its
// templates name; an inform policy prunes nothing.
func TestPrune(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "prune", nil)
	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: found, namespace: prune}")
	p := newPolicy("pruning", fleetv1.RemediationEnforce,
		tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: made, namespace: prune}\ndata: {a: '1'}"),
		tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: found, namespace: prune}\ndata: {b: '2'}"),
		tmpl(t, fleetv1.MustNotHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: never, namespace: prune}"))
	p.Spec.PruneObjectBehavior = fleetv1.PruneDeleteIfCreated
	e.source.Set(p)
	e.waitStatus(t, "pruning", is(fleetv1.Compliant, 1))
	if _, err := e.get(cmGVR, "prune", "made"); err != nil {
		t.Fatal(err)
	}

	e.source.MarkDeleting("cluster1", "policies.pruning")
	testutil.Eventually(t, within, func() error {
		if !e.sink.IsPruned("cluster1", "policies.pruning") {
			return fmt.Errorf("not reported pruned")
		}
		return nil
	})
	if _, err := e.get(cmGVR, "prune", "made"); !apierrors.IsNotFound(err) {
		t.Errorf("the ConfigMap the policy created: %v", err)
	}
	if _, err := e.get(cmGVR, "prune", "found"); err != nil {
		t.Errorf("the ConfigMap the policy found: %v", err)
	}

	// Prune called on its own, with DeleteAll; inform first, which prunes
	// nothing.
	all := p.DeepCopy()
	all.Spec.PruneObjectBehavior = fleetv1.PruneDeleteAll
	all.Spec.RemediationAction = fleetv1.RemediationInform
	if err := e.engine.Prune(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	if _, err := e.get(cmGVR, "prune", "found"); err != nil {
		t.Errorf("an inform policy pruned: %v", err)
	}
	all.Spec.RemediationAction = fleetv1.RemediationEnforce
	if err := e.engine.Prune(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	if _, err := e.get(cmGVR, "prune", "found"); !apierrors.IsNotFound(err) {
		t.Errorf("DeleteAll left the ConfigMap it names: %v", err)
	}
}
