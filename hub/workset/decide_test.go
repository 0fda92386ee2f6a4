package workset

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

const (
	P  = fleetv1.RolloutProgressing
	OK = fleetv1.RolloutSucceeded
)

func dur(d time.Duration) metav1.Duration { return metav1.Duration{Duration: d} }

func progressive(n, batch int, s fleetv1.RolloutStrategy) refPlan {
	s.Type, s.MaxConcurrency = RolloutProgressive, cnt(batch)
	return refPlan{name: "web", targets: tgts(n, n), strategy: s}
}

func perGroup(n, group int, s fleetv1.RolloutStrategy) refPlan {
	s.Type = RolloutProgressivePerGroup
	return refPlan{name: "web", targets: tgts(n, group), strategy: s}
}

// TestRolloutStageByStage: each stage starts once the one before has
// succeeded; the revision becomes stable when the last does.
func TestRolloutStageByStage(t *testing.T) {
	s := newSim(t, 1, progressive(3, 2, fleetv1.RolloutStrategy{}))
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 0:c1=Progressing 1:c2=Pending", "c0=2 c1=2 c2=1")
	s.set(workSucceeded, "c0")
	s.pass()
	s.expect(P, 0, "0:c0=Succeeded 0:c1=Progressing 1:c2=Pending", "c0=2 c1=2 c2=1")
	s.set(workSucceeded, "c1")
	s.pass()
	s.expect(P, 1, "0:c0=Succeeded 0:c1=Succeeded 1:c2=Progressing", "c0=2 c1=2 c2=2")
	s.set(workSucceeded, "c2")
	s.pass()
	s.expect(OK, 2, "0:c0=Succeeded 0:c1=Succeeded 1:c2=Succeeded", "c0=2 c1=2 c2=2")
	if s.out.stable != 2 || s.st.CompletionTime == nil {
		t.Errorf("stable %d, completion %v; want 2 and a time", s.out.stable, s.st.CompletionTime)
	}
	if d := s.cluster("c2").DecidedBy; d == nil || d.Signal != fleetv1.SignalWork {
		t.Errorf("c2 decided by %+v, want its work", d)
	}
	want := []string{"RolloutStarted", "StageStarted", "StageSucceeded", "StageStarted", "StageSucceeded", "RolloutSucceeded"}
	var got []string
	for _, e := range s.events {
		got = append(got, strings.SplitN(e, ":", 2)[0])
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v", s.events, want)
	}
}

// TestRolloutSoak: a stage waits minSuccessTime after its clusters succeed.
func TestRolloutSoak(t *testing.T) {
	s := newSim(t, 1, progressive(2, 1, fleetv1.RolloutStrategy{MinSuccessTime: dur(time.Minute)}))
	s.pass()
	s.after(10*time.Second).set(workSucceeded, "c0")
	s.pass()
	s.expect(P, 0, "0:c0=Verifying 1:c1=Pending", "c0=2 c1=1")
	if s.out.requeue != time.Minute {
		t.Errorf("next check in %s, want the soak's end in 1m", s.out.requeue)
	}
	s.after(59 * time.Second).pass()
	s.expect(P, 0, "0:c0=Verifying 1:c1=Pending", "c0=2 c1=1")
	s.after(time.Second).pass()
	s.expect(P, 1, "0:c0=Succeeded 1:c1=Progressing", "c0=2 c1=2")
	// A work that falls back restarts its soak.
	s.set(workSucceeded, "c1")
	s.after(time.Second).pass()
	s.set(workProgressing, "c1")
	s.after(50 * time.Second).pass()
	s.set(workSucceeded, "c1")
	s.after(20 * time.Second).pass()
	s.expect(P, 1, "0:c0=Succeeded 1:c1=Verifying", "c0=2 c1=2")
	s.after(time.Minute).pass()
	s.expect(OK, 2, "0:c0=Succeeded 1:c1=Succeeded", "c0=2 c1=2")
}

// TestRolloutProgressDeadline: a cluster not successful within the
// deadline has failed; beyond the budget the rollout pauses (the default
// failure strategy) with the reason.
func TestRolloutProgressDeadline(t *testing.T) {
	s := newSim(t, 1, progressive(2, 1, fleetv1.RolloutStrategy{ProgressDeadline: &metav1.Duration{Duration: 5 * time.Minute}}))
	s.pass()
	if s.out.requeue != 5*time.Minute {
		t.Errorf("next check in %s, want the deadline in 5m", s.out.requeue)
	}
	s.after(5*time.Minute - time.Second).pass()
	s.expect(P, 0, "0:c0=Progressing 1:c1=Pending", "c0=2 c1=1")
	s.after(time.Second).pass()
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Failed 1:c1=Pending", "c0=2 c1=1")
	d := s.cluster("c0").DecidedBy
	if d == nil || d.Signal != fleetv1.SignalProgressDeadline || d.Threshold != "progressDeadline 5m0s" || d.Value != "5m0s" {
		t.Errorf("decided by %+v, want the progress deadline with its threshold and value", d)
	}
	if s.st.Reason != ReasonFailureBudget || !strings.Contains(s.st.Message, "c0: not successful within the progress deadline") {
		t.Errorf("reason %s, message %q", s.st.Reason, s.st.Message)
	}
	// Paused: nothing moves, whatever the works do.
	s.set(workSucceeded, "c0")
	s.after(time.Minute).pass()
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Failed 1:c1=Pending", "c0=2 c1=1")
	// Resumed: measured again from scratch.
	s.in.resume = "2026-12-01T10:07:00Z"
	s.pass()
	s.expect(P, 1, "0:c0=Succeeded 1:c1=Progressing", "c0=2 c1=2")
}

// TestRolloutMaxFailures: Progressive counts failures over the placement,
// across stages; mandatory groups tolerate none whatever maxFailures says.
func TestRolloutMaxFailures(t *testing.T) {
	s := newSim(t, 1, progressive(4, 2, fleetv1.RolloutStrategy{MaxFailures: cnt(1), FailureStrategy: FailureHalt}))
	s.pass()
	s.set(workFailed, "c0")
	s.set(workSucceeded, "c1")
	s.pass()
	s.expect(P, 1, "0:c0=Failed 0:c1=Succeeded 1:c2=Progressing 1:c3=Progressing", "c0=2 c1=2 c2=2 c3=2")
	s.set(workFailed, "c2")
	s.pass()
	s.expect(fleetv1.RolloutHalted, 1, "0:c0=Failed 0:c1=Succeeded 1:c2=Failed 1:c3=Progressing", "c0=2 c1=2 c2=2 c3=2")
	if !strings.Contains(s.st.Message, "2 clusters failed, budget 1") && !strings.Contains(s.st.Message, "budget 1") {
		t.Errorf("message %q", s.st.Message)
	}
	// Halted is final: the works stay as they are.
	s.set(workSucceeded, "c2", "c3")
	s.after(time.Hour).pass()
	s.expect(fleetv1.RolloutHalted, 1, "0:c0=Failed 0:c1=Succeeded 1:c2=Failed 1:c3=Progressing", "c0=2 c1=2 c2=2 c3=2")

	m := newSim(t, 1, perGroup(4, 2, fleetv1.RolloutStrategy{MaxFailures: pct("50%"), FailureStrategy: FailureHalt,
		MandatoryDecisionGroups: []fleetv1.MandatoryDecisionGroup{{GroupIndex: 0}}}))
	m.pass()
	m.set(workFailed, "c0")
	m.set(workSucceeded, "c1")
	m.pass()
	m.expect(fleetv1.RolloutHalted, 0, "0:c0=Failed 0:c1=Succeeded 1:c2=Pending 1:c3=Pending", "c0=2 c1=2 c2=1 c3=1")
	if s := m.st.Stages[0]; !s.Mandatory || s.MaxFailures != 0 || s.Phase != fleetv1.StageFailed {
		t.Errorf("mandatory stage %+v", s)
	}
}

// TestRolloutGates: a cluster passes a gate after count successful
// measurements; a failed measurement beyond the limit fails it, with the
// query, value and threshold; Rollback takes the stage back to the stable
// revision.
func TestRolloutGates(t *testing.T) {
	g := fleetv1.RolloutGate{Name: "errors", Query: `q`, SuccessCondition: "value < 0.05", Count: 2, Interval: dur(30 * time.Second),
		InitialDelay: dur(10 * time.Second)}
	s := newSim(t, 1, perGroup(4, 2, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{g}, FailureStrategy: FailureRollback}))
	s.pass()
	if due := s.due(); len(due) != 0 {
		t.Errorf("gates due before any work applied: %v", due)
	}
	s.set(workSucceeded, "c0", "c1")
	if due := s.due(); len(due) != 0 {
		t.Errorf("gates due within the initial delay: %v", due)
	}
	s.after(10 * time.Second)
	if due := s.due(); strings.Join(due, ",") != "errors" {
		t.Fatalf("due %v, want errors", due)
	}
	s.pass(s.measure("errors", map[string]float64{"c0": 0.01, "c1": 0.02}))
	s.expect(P, 0, "0:c0=Verifying 0:c1=Verifying 1:c2=Pending 1:c3=Pending", "c0=2 c1=2 c2=1 c3=1")
	if due := s.after(29 * time.Second).due(); len(due) != 0 {
		t.Errorf("gate due within its interval: %v", due)
	}
	s.after(time.Second).pass(s.measure("errors", map[string]float64{"c0": 0.01, "c1": 0.03}))
	s.expect(P, 1, "0:c0=Succeeded 0:c1=Succeeded 1:c2=Progressing 1:c3=Progressing", "c0=2 c1=2 c2=2 c3=2")
	if d := s.cluster("c1").DecidedBy; d == nil || d.Signal != fleetv1.SignalGate || d.Gate != "errors" || d.Value != "0.03" || d.Threshold != "value < 0.05" {
		t.Errorf("c1 decided by %+v, want gate errors at 0.03 against value < 0.05", d)
	}

	// The next group: c3's error ratio is too high.
	s.set(workSucceeded, "c2", "c3")
	s.after(10 * time.Second).pass(s.measure("errors", map[string]float64{"c2": 0.01, "c3": 0.4}))
	s.expect(fleetv1.RolloutRolledBack, 1, "0:c0=Succeeded 0:c1=Succeeded 1:c2=RolledBack 1:c3=RolledBack", "c0=2 c1=2 c2=1 c3=1")
	d := s.cluster("c3").DecidedBy
	if d == nil || d.Signal != fleetv1.SignalGate || d.Query != "q{errors}" || d.Value != "0.4" || d.Threshold != "not value < 0.05" {
		t.Errorf("c3 decided by %+v, want the gate's query, value 0.4 and threshold", d)
	}
	if !strings.Contains(s.st.Message, "c3: gate errors value 0.4 (not value < 0.05) from q{errors}") {
		t.Errorf("message %q", s.st.Message)
	}
	if c := s.cluster("c3").Gates; len(c) != 1 || c[0].Failed != 1 || c[0].Value != "0.4" {
		t.Errorf("c3 gate counts %+v", c)
	}
	// Level-triggered: a rolled-back cluster that gets the failed revision
	// back (by hand) is taken back again.
	s.works["c2"].rev = 2
	s.pass()
	s.expect(fleetv1.RolloutRolledBack, 1, "0:c0=Succeeded 0:c1=Succeeded 1:c2=RolledBack 1:c3=RolledBack", "c0=2 c1=2 c2=1 c3=1")
}

// TestRolloutRollbackAll takes every cluster of the rollout back.
func TestRolloutRollbackAll(t *testing.T) {
	g := fleetv1.RolloutGate{Name: "restarts", Query: `q`, FailureCondition: "value > 0"}
	s := newSim(t, 1, perGroup(3, 1, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{g}, FailureStrategy: FailureRollback, RollbackScope: RollbackAll}))
	s.pass()
	s.set(workSucceeded, "c0")
	s.pass(s.measure("restarts", map[string]float64{"c0": 0}))
	s.set(workSucceeded, "c1")
	s.pass(s.measure("restarts", map[string]float64{"c1": 2}))
	s.expect(fleetv1.RolloutRolledBack, 1, "0:c0=RolledBack 1:c1=RolledBack 2:c2=Pending", "c0=1 c1=1 c2=1")
	if d := s.cluster("c0").DecidedBy; d == nil || d.Signal != fleetv1.SignalRollback {
		t.Errorf("c0 decided by %+v, want the rollback", d)
	}
	// Without a stable revision there is nothing to roll back to: halt.
	f := newSim(t, 0, perGroup(1, 1, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{g}, FailureStrategy: FailureRollback}))
	f.pass()
	f.set(workSucceeded, "c0")
	f.pass(f.measure("restarts", map[string]float64{"c0": 1}))
	f.expect(fleetv1.RolloutHalted, 0, "0:c0=Failed", "c0=2")
	if !strings.Contains(f.st.Message, "nothing to roll back to") {
		t.Errorf("message %q", f.st.Message)
	}
}

// TestRolloutNoDataPauses: no data never passes silently: the rollout
// pauses, and resuming measures again.
func TestRolloutNoDataPauses(t *testing.T) {
	g := fleetv1.RolloutGate{Name: "errors", Query: `q`, SuccessCondition: "value < 0.05"}
	s := newSim(t, 1, progressive(2, 2, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{g}}))
	s.pass()
	s.set(workSucceeded, "c0", "c1")
	s.pass(s.measure("errors", map[string]float64{"c0": 0.01}))
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Succeeded 0:c1=Inconclusive", "c0=2 c1=2")
	if s.st.Reason != ReasonInconclusive || !strings.Contains(s.st.Message, "1 clusters inconclusive") {
		t.Errorf("reason %s, message %q", s.st.Reason, s.st.Message)
	}
	if d := s.cluster("c1").DecidedBy; d == nil || d.Threshold != "no data (noData: Pause)" || d.Value != "" {
		t.Errorf("c1 decided by %+v", d)
	}
	if due := s.after(time.Hour).due(); len(due) != 0 {
		t.Errorf("a paused rollout measures: %v", due)
	}
	// A query that fails is inconclusive too, never a pass.
	s.in.resume = "r1"
	s.pass()
	s.expect(P, 0, "0:c0=Verifying 0:c1=Verifying", "c0=2 c1=2")
	failed := s.measure("errors", nil)
	failed.err = errNoTelemetry
	s.pass(failed)
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Inconclusive 0:c1=Inconclusive", "c0=2 c1=2")
	if d := s.cluster("c0").DecidedBy; d == nil || !strings.Contains(d.Threshold, "query failed: the hub has no telemetry") {
		t.Errorf("c0 decided by %+v", d)
	}
	s.in.resume = "r2"
	s.pass(s.measure("errors", map[string]float64{"c0": 0.01, "c1": 0.01}))
	s.expect(OK, 1, "0:c0=Succeeded 0:c1=Succeeded", "c0=2 c1=2")
}

// TestRolloutAllClustersValue: a sample without a cluster label is every
// measured cluster's value.
func TestRolloutAllClustersValue(t *testing.T) {
	g := fleetv1.RolloutGate{Name: "fleet", Query: `q`, SuccessCondition: "value >= 0.99"}
	s := newSim(t, 1, progressive(2, 2, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{g}}))
	s.pass()
	s.set(workSucceeded, "c0", "c1")
	v := 0.995
	r := s.measure("fleet", nil)
	r.all = &v
	s.pass(r)
	s.expect(OK, 1, "0:c0=Succeeded 0:c1=Succeeded", "c0=2 c1=2")
}

// TestRolloutMembership: clusters that leave drop out; clusters decided
// after the start join the last stage and meanwhile run the stable
// revision.
func TestRolloutMembership(t *testing.T) {
	ref := progressive(3, 1, fleetv1.RolloutStrategy{})
	s := newSim(t, 1, ref)
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 1:c1=Pending 2:c2=Pending", "c0=2 c1=1 c2=1")
	s.in.refs[0].targets = []target{{"c0", 0}, {"c2", 0}, {"new", 0}}
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 2:c2=Pending 2:new=Pending", "c0=2 c2=1 new=1")
	if s.st.Stages[1].Clusters != 0 || s.st.Stages[2].Clusters != 2 {
		t.Errorf("stage sizes %d, %d; want 0, 2", s.st.Stages[1].Clusters, s.st.Stages[2].Clusters)
	}
	s.set(workSucceeded, "c0")
	s.pass()
	s.expect(P, 2, "0:c0=Succeeded 2:c2=Progressing 2:new=Progressing", "c0=2 c2=2 new=2")
	s.set(workSucceeded, "c2", "new")
	s.pass()
	s.expect(OK, 3, "0:c0=Succeeded 2:c2=Succeeded 2:new=Succeeded", "c0=2 c2=2 new=2")
	// After the rollout a newly decided cluster gets the revision at once.
	s.in.refs[0].targets = append(s.in.refs[0].targets, target{"later", 0})
	s.pass()
	if s.revs() != "c0=2 c2=2 later=2 new=2" {
		t.Errorf("works %s, want later on revision 2", s.revs())
	}
}

// TestRolloutPausedAndApproved: spec.paused and a stage that needs an
// approval keep the next stage from starting; the running stage finishes.
func TestRolloutPausedAndApproved(t *testing.T) {
	s := newSim(t, 1, progressive(3, 1, fleetv1.RolloutStrategy{ApprovalBeforeStages: []int32{1}}))
	s.in.paused = true
	s.pass()
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Pending 1:c1=Pending 2:c2=Pending", "c0=1 c1=1 c2=1")
	s.in.paused = false
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 1:c1=Pending 2:c2=Pending", "c0=2 c1=1 c2=1")
	s.in.paused = true
	s.set(workSucceeded, "c0")
	s.pass()
	s.expect(fleetv1.RolloutPaused, 1, "0:c0=Succeeded 1:c1=Pending 2:c2=Pending", "c0=2 c1=1 c2=1")
	s.in.paused = false
	s.pass()
	s.expect(fleetv1.RolloutWaitingApproval, 1, "0:c0=Succeeded 1:c1=Pending 2:c2=Pending", "c0=2 c1=1 c2=1")
	s.in.approvals = map[int32]string{1: "alice (RolloutApproval web-2-1)"}
	s.pass()
	s.expect(P, 1, "0:c0=Succeeded 1:c1=Progressing 2:c2=Pending", "c0=2 c1=2 c2=1")
	if s.st.Stages[1].ApprovedBy != "alice (RolloutApproval web-2-1)" {
		t.Errorf("stage 1 approved by %q", s.st.Stages[1].ApprovedBy)
	}
	s.set(workSucceeded, "c1")
	s.pass()
	s.expect(P, 2, "0:c0=Succeeded 1:c1=Succeeded 2:c2=Progressing", "c0=2 c1=2 c2=2")
}

// TestRolloutNewRevisionRestarts: a new revision starts a new rollout from
// the first stage, its stable revision the last that succeeded.
func TestRolloutNewRevisionRestarts(t *testing.T) {
	s := newSim(t, 1, progressive(2, 1, fleetv1.RolloutStrategy{}))
	s.pass()
	s.set(workSucceeded, "c0")
	s.pass()
	s.in.revision = 3
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 1:c1=Pending", "c0=3 c1=2")
	if s.st.PreviousRevision != 1 || s.st.Revision != 3 {
		t.Errorf("rollout of %d after %d, want 3 after 1", s.st.Revision, s.st.PreviousRevision)
	}
}

// TestRolloutInvalidSpec: a gate that cannot be evaluated keeps stages
// from starting.
func TestRolloutInvalidSpec(t *testing.T) {
	ref := progressive(1, 1, fleetv1.RolloutStrategy{Gates: []fleetv1.RolloutGate{{Name: "g", Query: "q", SuccessCondition: "value ~ 1"}}})
	s := &sim{t: t, now: t0, works: map[string]*simWork{"c0": {rev: 1, outcome: workSucceeded, applied: true}}}
	s.in = rolloutInput{revision: 2, stable: 1, refs: []refPlan{ref}, hashes: map[int64]string{1: "h1", 2: "h2"}}
	s.in.gates, s.in.invalid = parseGates(s.in.refs)
	s.pass()
	s.expect(fleetv1.RolloutPaused, 0, "0:c0=Pending", "c0=1")
	if s.st.Reason != ReasonInvalidSpec || !strings.Contains(s.st.Message, `condition "value ~ 1"`) {
		t.Errorf("reason %s, message %q", s.st.Reason, s.st.Message)
	}
}

// TestRolloutWaitsForDecisions: stages are not cut while a placement is
// still writing its decisions.
func TestRolloutWaitsForDecisions(t *testing.T) {
	ref := perGroup(3, 1, fleetv1.RolloutStrategy{})
	ref.pending = "placement web: 1 of 3 decisions seen"
	s := newSim(t, 0, ref)
	s.pass()
	if s.st.Reason != ReasonWaitingDecisions || len(s.st.Stages) != 0 || len(s.out.apply) != 0 {
		t.Fatalf("rollout %+v, applied %v; want it waiting for the decisions", s.st, s.out.apply)
	}
	s.in.refs[0].pending = ""
	s.pass()
	s.expect(P, 0, "0:c0=Progressing 1:c1=Pending 2:c2=Pending", "c0=2 c1=- c2=-")
}
