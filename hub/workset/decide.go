package workset

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Reasons of a rollout's phase.
const (
	ReasonStarted          = "StageProgressing"
	ReasonPaused           = "Paused"
	ReasonWaitingApproval  = "WaitingApproval"
	ReasonFailureBudget    = "FailureBudgetExceeded"
	ReasonInconclusive     = "Inconclusive"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonSucceeded        = "AllStagesSucceeded"
	ReasonWaitingDecisions = "WaitingForDecisions"
)

// rolloutInput is everything one pass decides a rollout from.
type rolloutInput struct {
	now time.Time
	// revision is the current revision, stable the last good one (0:
	// none); hashes has both revisions' template hashes.
	revision, stable int64
	hashes           map[int64]string
	refs             []refPlan
	// gates are each ref's parsed gates; invalid describes spec problems
	// that keep stages from starting.
	gates   map[string][]*gate
	invalid string
	paused  bool
	resume  string
	// approvals: by stage index, who approved it.
	approvals map[int32]string
	// works of every decided cluster (a zero workObs: no work).
	works   map[string]workObs
	results []gateResult
}

// rolloutOutput is what a pass does about it.
type rolloutOutput struct {
	// apply: the revision each cluster's work must get now.
	apply        map[string]int64
	events       []rolloutEvent
	requeue      time.Duration
	stable       int64
	measurements []measurement
	decisions    []decided
}

type rolloutEvent struct {
	warning         bool
	reason, message string
}

type measurement struct {
	gate    string
	outcome outcome
}

type decided struct {
	verdict fleetv1.ClusterVerdict
	signal  string
}

// decider runs one pass over a rollout.
type decider struct {
	in  *rolloutInput
	st  *fleetv1.RolloutStatus
	out rolloutOutput
	now metav1.Time
}

// decideRollout moves the current revision's rollout as far as it can go.
func decideRollout(prev *fleetv1.RolloutStatus, in *rolloutInput) (*fleetv1.RolloutStatus, rolloutOutput) {
	d := &decider{in: in, now: metav1.NewTime(in.now), out: rolloutOutput{apply: map[string]int64{}, stable: in.stable}}
	// A rollout that found no cluster to cut into stages has not started;
	// nor does one while a placement is still writing its decisions, which
	// would cut the stages short.
	if prev == nil || prev.Revision != in.revision || len(prev.Stages) == 0 {
		if pending := d.pendingDecisions(); pending != "" {
			d.st = &fleetv1.RolloutStatus{Revision: in.revision, PreviousRevision: in.stable, Phase: fleetv1.RolloutProgressing,
				Reason: ReasonWaitingDecisions, Message: pending}
			d.steady()
			return d.st, d.out
		}
		d.start()
	} else {
		d.st = prev.DeepCopy()
	}
	d.syncMembership()
	if !d.terminal() {
		d.resume()
		if !d.stopped() {
			for i := range in.results {
				d.record(&in.results[i])
			}
		}
		d.advance()
	}
	d.steady()
	d.out.requeue = d.nextCheck()
	return d.st, d.out
}

// pendingDecisions says which placements may still be writing decisions.
func (d *decider) pendingDecisions() string {
	var out []string
	for _, ref := range d.in.refs {
		if ref.pending != "" {
			out = append(out, ref.pending)
		}
	}
	return strings.Join(out, "; ")
}

func (d *decider) event(warning bool, reason, format string, args ...any) {
	d.out.events = append(d.out.events, rolloutEvent{warning: warning, reason: reason, message: fmt.Sprintf(format, args...)})
}

// start cuts a new rollout of the current revision from the decisions.
func (d *decider) start() {
	st := &fleetv1.RolloutStatus{Revision: d.in.revision, PreviousRevision: d.in.stable, Phase: fleetv1.RolloutProgressing,
		Reason: ReasonStarted, StartTime: &d.now}
	for i, s := range buildStages(d.in.refs) {
		st.Stages = append(st.Stages, fleetv1.RolloutStageStatus{Name: s.name, Placement: s.ref, Mandatory: s.mandatory, Phase: fleetv1.StagePending})
		for _, c := range s.clusters {
			st.Clusters = append(st.Clusters, fleetv1.ClusterRolloutStatus{Cluster: c, Stage: int32(i), Verdict: fleetv1.VerdictPending})
		}
	}
	d.st = st
	if len(st.Stages) == 0 {
		return
	}
	d.event(false, "RolloutStarted", "revision %d: %d clusters in %d stages%s", d.in.revision, len(st.Clusters), len(st.Stages), previous(d.in.stable))
}

func previous(stable int64) string {
	if stable == 0 {
		return ""
	}
	return fmt.Sprintf(", stable revision %d", stable)
}

// syncMembership drops clusters no longer decided and adds those decided
// since the rollout started, to the last stage of their placement or the
// running stage, whichever is later; then it recounts the stages.
func (d *decider) syncMembership() {
	st := d.st
	st.Clusters = slices.DeleteFunc(st.Clusters, func(c fleetv1.ClusterRolloutStatus) bool {
		_, ok := d.in.works[c.Cluster]
		return !ok
	})
	have := map[string]bool{}
	for _, c := range st.Clusters {
		have[c.Cluster] = true
	}
	for _, ref := range d.in.refs {
		last := int32(-1)
		for i, s := range st.Stages {
			if s.Placement == ref.name {
				last = int32(i)
			}
		}
		for _, t := range ref.targets {
			if have[t.cluster] {
				continue
			}
			have[t.cluster] = true
			stage := max(last, st.CurrentStage)
			if stage < 0 || int(stage) >= len(st.Stages) {
				continue // no stage to join: the steady state hands it a revision
			}
			st.Clusters = append(st.Clusters, fleetv1.ClusterRolloutStatus{Cluster: t.cluster, Stage: stage, Verdict: fleetv1.VerdictPending})
		}
	}
	slices.SortStableFunc(st.Clusters, func(a, b fleetv1.ClusterRolloutStatus) int { return int(a.Stage - b.Stage) })
	for i := range st.Stages {
		st.Stages[i].Clusters = 0
	}
	for _, c := range st.Clusters {
		st.Stages[c.Stage].Clusters++
	}
}

func (d *decider) terminal() bool {
	switch d.st.Phase {
	case fleetv1.RolloutSucceeded, fleetv1.RolloutHalted, fleetv1.RolloutRolledBack:
		return true
	}
	return false
}

// stopped: paused on a failure or an inconclusive gate, until resumed.
func (d *decider) stopped() bool {
	return d.st.Phase == fleetv1.RolloutPaused && (d.st.Reason == ReasonFailureBudget || d.st.Reason == ReasonInconclusive)
}

// resume acts on a new fleetpulse.io/resume value: the running stage's
// failed and inconclusive clusters are measured again from scratch.
func (d *decider) resume() {
	if d.in.resume == "" || d.in.resume == d.st.Resumed {
		return
	}
	d.st.Resumed = d.in.resume
	if !d.stopped() {
		return
	}
	i := d.st.CurrentStage
	for k := range d.st.Clusters {
		c := &d.st.Clusters[k]
		if c.Stage != i {
			continue
		}
		c.Gates = nil
		if c.Verdict == fleetv1.VerdictFailed || c.Verdict == fleetv1.VerdictInconclusive {
			c.Verdict, c.DecidedBy, c.SuccessTime = fleetv1.VerdictProgressing, nil, nil
			c.UpdateTime = &d.now
		}
	}
	stage := &d.st.Stages[i]
	stage.Gates, stage.Failed = nil, 0
	d.st.Phase, d.st.Reason = fleetv1.RolloutProgressing, ReasonStarted
	d.event(false, "RolloutResumed", "revision %d: stage %s measured again from scratch", d.st.Revision, stage.Name)
}

// stageCtx is what the rules of a stage need.
type stageCtx struct {
	index    int32
	stage    *fleetv1.RolloutStageStatus
	strategy fleetv1.RolloutStrategy
	gates    []*gate
	refSize  int
}

func (d *decider) stageCtx(i int32) stageCtx {
	s := &d.st.Stages[i]
	sc := stageCtx{index: i, stage: s, gates: d.in.gates[s.Placement]}
	for _, ref := range d.in.refs {
		if ref.name == s.Placement {
			sc.strategy = ref.strategy
			sc.refSize = len(ref.targets)
		}
	}
	return sc
}

// advance starts and evaluates stages in order until one has to wait.
func (d *decider) advance() {
	st := d.st
	if len(st.Stages) == 0 {
		st.Phase, st.Reason, st.Message = fleetv1.RolloutProgressing, ReasonNoClusters, "no cluster is decided yet"
		return
	}
	for int(st.CurrentStage) < len(st.Stages) {
		sc := d.stageCtx(st.CurrentStage)
		switch sc.stage.Phase {
		case fleetv1.StagePending, fleetv1.StageWaitingApproval:
			if !d.startStage(sc) {
				return
			}
		case fleetv1.StageFailed:
			return
		}
		if d.stopped() {
			return
		}
		if !d.evaluate(sc) {
			return
		}
		st.CurrentStage++
	}
	st.Phase, st.Reason, st.CompletionTime = fleetv1.RolloutSucceeded, ReasonSucceeded, &d.now
	st.Message = fmt.Sprintf("revision %d runs on every cluster of the rollout that did not fail", st.Revision)
	d.out.stable = st.Revision
	d.event(false, "RolloutSucceeded", "revision %d: all %d stages succeeded; it is the stable revision", st.Revision, len(st.Stages))
}

// startStage starts a stage unless the spec is invalid or paused, or the
// stage waits for an approval.
func (d *decider) startStage(sc stageCtx) bool {
	st, s := d.st, sc.stage
	switch {
	case d.in.invalid != "":
		st.Phase, st.Reason, st.Message = fleetv1.RolloutPaused, ReasonInvalidSpec, d.in.invalid
		return false
	case d.in.paused:
		st.Phase, st.Reason = fleetv1.RolloutPaused, ReasonPaused
		st.Message = fmt.Sprintf("spec.paused: stage %d (%s) of revision %d waits", sc.index, s.Name, st.Revision)
		return false
	case slices.Contains(sc.strategy.ApprovalBeforeStages, d.localIndex(sc.index)):
		who, ok := d.in.approvals[sc.index]
		if !ok {
			if s.Phase != fleetv1.StageWaitingApproval {
				d.event(false, "WaitingApproval", "revision %d: stage %d (%s) waits for a RolloutApproval", st.Revision, sc.index, s.Name)
			}
			s.Phase = fleetv1.StageWaitingApproval
			st.Phase, st.Reason = fleetv1.RolloutWaitingApproval, ReasonWaitingApproval
			st.Message = fmt.Sprintf("stage %d (%s) of revision %d waits for a RolloutApproval", sc.index, s.Name, st.Revision)
			return false
		}
		s.ApprovedBy = who
		d.event(false, "StageApproved", "revision %d: stage %d (%s) approved by %s", st.Revision, sc.index, s.Name, who)
	}
	s.Phase, s.StartTime = fleetv1.StageProgressing, &d.now
	s.MaxFailures = int32(failureBudget(sc.strategy, s.Mandatory, int(s.Clusters), sc.refSize))
	st.Phase, st.Reason = fleetv1.RolloutProgressing, ReasonStarted
	d.event(false, "StageStarted", "revision %d: stage %d of %d (%s), %d clusters", st.Revision, sc.index+1, len(st.Stages), s.Name, s.Clusters)
	return true
}

// localIndex is a stage's index among its placement's stages.
func (d *decider) localIndex(i int32) int32 {
	var n int32
	for k := int32(0); k < i; k++ {
		if d.st.Stages[k].Placement == d.st.Stages[i].Placement {
			n++
		}
	}
	return n
}

// evaluate updates a running stage's clusters and says whether the stage
// has succeeded. A failure beyond the budget acts by the failure strategy;
// an inconclusive cluster pauses the rollout.
func (d *decider) evaluate(sc stageCtx) bool {
	st, s := d.st, sc.stage
	var failed, inconclusive, done int32
	var failures []string
	for k := range st.Clusters {
		c := &st.Clusters[k]
		if c.Stage != sc.index {
			continue
		}
		if c.UpdateTime == nil && !d.in.paused {
			c.UpdateTime, c.Verdict = &d.now, fleetv1.VerdictProgressing
			d.out.apply[c.Cluster] = st.Revision
		}
		d.updateCluster(c, sc)
		switch c.Verdict {
		case fleetv1.VerdictFailed:
			failed++
			done++
			failures = append(failures, describeFailure(c))
		case fleetv1.VerdictInconclusive:
			inconclusive++
		case fleetv1.VerdictSucceeded:
			done++
		}
	}
	s.Failed = failed
	spent := failed
	if !s.Mandatory && sc.strategy.Type != RolloutProgressivePerGroup {
		spent = d.refFailures(s.Placement)
	}
	switch {
	case spent > s.MaxFailures:
		d.fail(sc, failures)
		return false
	case inconclusive > 0:
		if !d.stopped() {
			d.event(true, "RolloutPaused", "revision %d: stage %s paused: %d clusters inconclusive: %s", st.Revision, s.Name, inconclusive,
				strings.Join(d.inconclusive(sc.index), "; "))
		}
		st.Phase, st.Reason = fleetv1.RolloutPaused, ReasonInconclusive
		st.Message = fmt.Sprintf("stage %d (%s): %d clusters inconclusive; resume to measure again, or roll back", sc.index, s.Name, inconclusive)
		return false
	case done == s.Clusters:
		s.Phase, s.CompletionTime = fleetv1.StageSucceeded, &d.now
		d.event(false, "StageSucceeded", "revision %d: stage %d of %d (%s) succeeded, %d of %d clusters failed (budget %d)",
			st.Revision, sc.index+1, len(st.Stages), s.Name, failed, s.Clusters, s.MaxFailures)
		return true
	}
	if d.in.paused {
		st.Phase, st.Reason = fleetv1.RolloutPaused, ReasonPaused
		st.Message = fmt.Sprintf("spec.paused: stage %d (%s) finishes, no stage starts", sc.index, s.Name)
	} else {
		st.Phase, st.Reason = fleetv1.RolloutProgressing, ReasonStarted
		st.Message = fmt.Sprintf("stage %d of %d (%s): %d of %d clusters done, %d failed (budget %d)",
			sc.index+1, len(st.Stages), s.Name, done, s.Clusters, failed, s.MaxFailures)
	}
	return false
}

// refFailures counts the failed clusters of a placement's non-mandatory
// stages so far.
func (d *decider) refFailures(placement string) int32 {
	var n int32
	for _, c := range d.st.Clusters {
		s := d.st.Stages[c.Stage]
		if c.Verdict == fleetv1.VerdictFailed && s.Placement == placement && !s.Mandatory && c.Stage <= d.st.CurrentStage {
			n++
		}
	}
	return n
}

func (d *decider) inconclusive(stage int32) []string {
	var out []string
	for _, c := range d.st.Clusters {
		if c.Stage == stage && c.Verdict == fleetv1.VerdictInconclusive {
			out = append(out, describeFailure(&c))
		}
	}
	return firstFew(out)
}

func firstFew(s []string) []string {
	const n = 5
	if len(s) <= n {
		return s
	}
	return append(slices.Clone(s[:n]), fmt.Sprintf("and %d more", len(s)-n))
}

// describeFailure says which signal decided a cluster's verdict.
func describeFailure(c *fleetv1.ClusterRolloutStatus) string {
	dec := c.DecidedBy
	if dec == nil {
		return c.Cluster
	}
	switch dec.Signal {
	case fleetv1.SignalGate:
		return fmt.Sprintf("%s: gate %s value %s (%s) from %s", c.Cluster, dec.Gate, orNone(dec.Value), dec.Threshold, dec.Query)
	case fleetv1.SignalProgressDeadline:
		return fmt.Sprintf("%s: %s (%s)", c.Cluster, dec.Message, dec.Threshold)
	default:
		return fmt.Sprintf("%s: %s", c.Cluster, dec.Message)
	}
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// fail acts on a failure beyond the budget.
func (d *decider) fail(sc stageCtx, failures []string) {
	st, s := d.st, sc.stage
	why := fmt.Sprintf("stage %d (%s): %d clusters failed, budget %d: %s", sc.index, s.Name, s.Failed, s.MaxFailures, strings.Join(firstFew(failures), "; "))
	strategy := sc.strategy.FailureStrategy
	if strategy == FailureRollback && st.PreviousRevision == 0 {
		strategy = FailureHalt
		why += "; no earlier revision succeeded, so nothing to roll back to"
	}
	switch strategy {
	case FailureHalt:
		s.Phase, s.CompletionTime = fleetv1.StageFailed, &d.now
		st.Phase, st.Reason, st.Message, st.CompletionTime = fleetv1.RolloutHalted, ReasonFailureBudget, why, &d.now
		d.event(true, "RolloutHalted", "revision %d halted: %s", st.Revision, why)
	case FailureRollback:
		s.Phase, s.CompletionTime = fleetv1.StageFailed, &d.now
		n := 0
		for k := range st.Clusters {
			c := &st.Clusters[k]
			if c.UpdateTime == nil || (sc.strategy.RollbackScope != RollbackAll && c.Stage != sc.index) {
				continue
			}
			if c.Verdict != fleetv1.VerdictFailed {
				c.DecidedBy = &fleetv1.RolloutDecision{Signal: fleetv1.SignalRollback, Time: d.now,
					Message: fmt.Sprintf("rolled back to revision %d: stage %s failed", st.PreviousRevision, s.Name)}
			}
			c.Verdict = fleetv1.VerdictRolledBack
			d.out.apply[c.Cluster] = st.PreviousRevision
			n++
		}
		st.Phase, st.Reason, st.CompletionTime = fleetv1.RolloutRolledBack, ReasonFailureBudget, &d.now
		st.Message = fmt.Sprintf("%d clusters rolled back to revision %d: %s", n, st.PreviousRevision, why)
		d.event(true, "RolledBack", "revision %d: %d clusters rolled back to revision %d: %s", st.Revision, n, st.PreviousRevision, why)
	default:
		if !d.stopped() {
			d.event(true, "RolloutPaused", "revision %d paused: %s", st.Revision, why)
		}
		st.Phase, st.Reason, st.Message = fleetv1.RolloutPaused, ReasonFailureBudget, why+"; resume to measure again, or roll back"
	}
}

// updateCluster sets a running stage's cluster's verdict from its work and
// gates. Failed, inconclusive and rolled-back verdicts stay until resumed.
func (d *decider) updateCluster(c *fleetv1.ClusterRolloutStatus, sc stageCtx) {
	switch c.Verdict {
	case fleetv1.VerdictFailed, fleetv1.VerdictInconclusive, fleetv1.VerdictRolledBack:
		return
	}
	if c.UpdateTime == nil {
		c.Verdict = fleetv1.VerdictPending
		return
	}
	was := c.Verdict
	w := d.in.works[c.Cluster]
	switch {
	case w.exists && w.current && w.outcome == workFailed:
		d.decide(c, fleetv1.VerdictFailed, &fleetv1.RolloutDecision{Signal: fleetv1.SignalWork, Message: w.message, Time: d.now})
		return
	case w.exists && w.current && w.outcome == workSucceeded:
		if c.SuccessTime == nil {
			c.SuccessTime = &d.now
		}
	default:
		c.SuccessTime = nil
		if dl := sc.strategy.ProgressDeadline; dl != nil && dl.Duration > 0 && d.in.now.Sub(c.UpdateTime.Time) >= dl.Duration {
			msg := "work not yet updated to the revision"
			if w.exists && w.current {
				msg = w.message
			}
			d.decide(c, fleetv1.VerdictFailed, &fleetv1.RolloutDecision{Signal: fleetv1.SignalProgressDeadline, Time: d.now,
				Value: d.in.now.Sub(c.UpdateTime.Time).Round(time.Second).String(), Threshold: "progressDeadline " + dl.Duration.String(),
				Message: "not successful within the progress deadline: " + msg})
			return
		}
		c.Verdict = fleetv1.VerdictProgressing
		return
	}
	var last *gate
	for _, g := range sc.gates {
		if g.state(gateStatus(c, g.spec.Name, false)) != gatePassed {
			c.Verdict = fleetv1.VerdictVerifying
			return
		}
		last = g
	}
	if d.in.now.Sub(c.SuccessTime.Time) < sc.strategy.MinSuccessTime.Duration {
		c.Verdict = fleetv1.VerdictVerifying
		return
	}
	if was == fleetv1.VerdictSucceeded {
		return
	}
	dec := &fleetv1.RolloutDecision{Signal: fleetv1.SignalWork, Message: w.message, Time: d.now}
	if last != nil {
		cg := gateStatus(c, last.spec.Name, false)
		dec = &fleetv1.RolloutDecision{Signal: fleetv1.SignalGate, Gate: last.spec.Name, Value: cg.Value, Threshold: last.spec.SuccessCondition,
			Message: fmt.Sprintf("%d successful measurements of %d needed", cg.Successful, last.count), Time: d.now}
		if dec.Threshold == "" {
			dec.Threshold = "not " + last.spec.FailureCondition
		}
	}
	d.decide(c, fleetv1.VerdictSucceeded, dec)
}

func (d *decider) decide(c *fleetv1.ClusterRolloutStatus, v fleetv1.ClusterVerdict, dec *fleetv1.RolloutDecision) {
	c.Verdict, c.DecidedBy = v, dec
	d.out.decisions = append(d.out.decisions, decided{verdict: v, signal: dec.Signal})
}

// gateStatus finds a cluster's counts for a gate, adding them if asked.
func gateStatus(c *fleetv1.ClusterRolloutStatus, name string, add bool) *fleetv1.ClusterGateStatus {
	for i := range c.Gates {
		if c.Gates[i].Name == name {
			return &c.Gates[i]
		}
	}
	if !add {
		return nil
	}
	c.Gates = append(c.Gates, fleetv1.ClusterGateStatus{Name: name})
	return &c.Gates[len(c.Gates)-1]
}
