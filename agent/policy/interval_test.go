package policy_test

import (
	"fmt"
	"testing"
	"time"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
)

// TestEvaluationInterval: a non-compliant policy is evaluated (and
// reported) every noncompliant interval; once compliant with "never", only
// a change evaluates it again.
func TestEvaluationInterval(t *testing.T) {
	t.Parallel()
	e := start(t, nil)
	e.namespace(t, "interval", nil)
	p := newPolicy("periodic", fleetv1.RemediationInform,
		tmpl(t, fleetv1.MustHave, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: interval}"))
	p.Spec.EvaluationInterval = fleetv1.EvaluationInterval{Compliant: "never", NonCompliant: "1s"}
	e.source.Set(p)
	first := e.waitStatus(t, "periodic", is(fleetv1.NonCompliant, 1))
	testutil.Eventually(t, within, func() error {
		if n := e.sink.Reports("cluster1", "policies.periodic"); n < 3 {
			return fmt.Errorf("%d reports", n)
		}
		return nil
	}, "evaluations every second")
	if st := e.sink.Status("cluster1", "policies.periodic"); !st.LastEvaluated.After(first.LastEvaluated.Time) || len(st.History) != 1 {
		t.Errorf("lastEvaluated %v after %v, history %s", st.LastEvaluated, first.LastEvaluated, dump(st.History))
	}

	e.create(t, cmGVR, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late, namespace: interval}")
	e.waitStatus(t, "periodic", is(fleetv1.Compliant, 1))
	n := e.sink.Reports("cluster1", "policies.periodic")
	testutil.Consistently(t, 3*time.Second, func() error {
		if got := e.sink.Reports("cluster1", "policies.periodic"); got != n {
			return fmt.Errorf("%d reports after %d: a compliant policy with interval never was evaluated again", got, n)
		}
		return nil
	})
}
