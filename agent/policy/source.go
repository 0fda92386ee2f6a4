package policy

import (
	"context"

	"k8s.io/apimachinery/pkg/types"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Source is where the engine gets the policies of this cluster (the hub's
// replicas, through the agent's transport).
type Source interface {
	// Policies returns the current set, which the engine does not modify,
	// and a channel that is closed when the set changes next. A policy with
	// a deletion timestamp is pruned (per its pruneObjectBehavior) and no
	// longer evaluated; a policy that leaves the set is forgotten.
	Policies() ([]*fleetv1.Policy, <-chan struct{})
}

// StatusSink takes what the engine finds (towards the hub, through the
// agent's transport).
type StatusSink interface {
	// Report is given a policy's status after an evaluation that changed it
	// (LastEvaluated aside), and at least once per evaluation interval. A
	// failed report is retried with backoff until one succeeds or the
	// status changes again.
	Report(ctx context.Context, p Ref, status *fleetv1.PolicyStatus) error
	// Pruned says that a deleting policy's objects are pruned, so the hub
	// may let the policy go. A failure is retried with backoff.
	Pruned(ctx context.Context, p Ref) error
}

// Ref names the policy a status is about, and the generation evaluated.
type Ref struct {
	Namespace, Name string
	UID             types.UID
	Generation      int64
}

func refOf(p *fleetv1.Policy) Ref {
	return Ref{Namespace: p.Namespace, Name: p.Name, UID: p.UID, Generation: p.Generation}
}

// Key is the policy's "<namespace>/<name>", the value of the created-by
// annotation on the objects it creates.
func (r Ref) Key() string { return r.Namespace + "/" + r.Name }

func keyOf(p *fleetv1.Policy) string { return p.Namespace + "/" + p.Name }
