// Package conflict makes a reconcile that lost a write race retry quietly.
package conflict

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// RetryAfter is how soon a reconcile that lost a write race runs again.
const RetryAfter = 100 * time.Millisecond

// Quiet wraps a reconcile: a write conflict (another writer changed the
// object since it was read) becomes a requeue after RetryAfter, logged at
// V(1), instead of an error, which controller-runtime logs as "Reconciler
// error" and retries with an exponential backoff. A level-triggered
// reconcile only has to look again.
func Quiet(fn reconcile.Func) reconcile.Func {
	return func(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
		res, err := fn(ctx, req)
		if err != nil && apierrors.IsConflict(err) {
			logf.FromContext(ctx).V(1).Info("write conflict; retrying", "err", err)
			return ctrl.Result{RequeueAfter: RetryAfter}, nil
		}
		return res, err
	}
}
