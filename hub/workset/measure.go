package workset

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// gateRun is a gate due to be measured over a stage.
type gateRun struct {
	stage int32
	gate  *gate
	vars  queryVars
}

// dueGates lists the running stage's gates whose interval has passed and
// that have a cluster to measure. A rollout that is not the current
// revision's, or is stopped or over, measures nothing.
func dueGates(st *fleetv1.RolloutStatus, in *rolloutInput, namespace, name string) []gateRun {
	if st == nil || st.Revision != in.revision || int(st.CurrentStage) >= len(st.Stages) {
		return nil
	}
	d := &decider{in: in, st: st, now: metav1.NewTime(in.now)}
	if d.terminal() || d.stopped() {
		return nil
	}
	sc := d.stageCtx(st.CurrentStage)
	if sc.stage.Phase != fleetv1.StageProgressing {
		return nil
	}
	var names []string
	for _, c := range st.Clusters {
		if c.Stage == sc.index {
			names = append(names, c.Cluster)
		}
	}
	var out []gateRun
	for _, g := range sc.gates {
		if last := stageGate(sc.stage, g.spec.Name, false); last != nil && last.LastMeasured != nil && in.now.Before(last.LastMeasured.Add(g.interval)) {
			continue
		}
		if len(d.measurable(sc.index, g)) == 0 {
			continue
		}
		out = append(out, gateRun{stage: sc.index, gate: g, vars: queryVars{
			Clusters: clusterAlternation(names), ClusterNames: names, Revision: st.Revision, PreviousRevision: st.PreviousRevision,
			TemplateHash: in.hashes[st.Revision], Stage: sc.index, Namespace: namespace, Name: name,
		}})
	}
	return out
}

// measurable lists a stage's clusters a gate measures now: updated at least
// its initial delay ago, the agent has applied the revision, and not
// failed, inconclusive or rolled back.
func (d *decider) measurable(stage int32, g *gate) []*fleetv1.ClusterRolloutStatus {
	var out []*fleetv1.ClusterRolloutStatus
	for k := range d.st.Clusters {
		c := &d.st.Clusters[k]
		if c.Stage != stage || c.UpdateTime == nil || d.in.now.Before(c.UpdateTime.Add(g.spec.InitialDelay.Duration)) {
			continue
		}
		switch c.Verdict {
		case fleetv1.VerdictFailed, fleetv1.VerdictInconclusive, fleetv1.VerdictRolledBack:
			continue
		}
		if w := d.in.works[c.Cluster]; w.exists && w.current && w.applied {
			out = append(out, c)
		}
	}
	return out
}

// stageGate finds a stage's record of a gate, adding it if asked.
func stageGate(s *fleetv1.RolloutStageStatus, name string, add bool) *fleetv1.StageGateStatus {
	for i := range s.Gates {
		if s.Gates[i].Name == name {
			return &s.Gates[i]
		}
	}
	if !add {
		return nil
	}
	s.Gates = append(s.Gates, fleetv1.StageGateStatus{Name: name})
	return &s.Gates[len(s.Gates)-1]
}

// record counts one measurement of the running stage for each cluster it
// measured. A cluster past a gate's failure limit has failed, past its
// inconclusive limit is inconclusive; either records the query, value and
// threshold that decided.
func (d *decider) record(r *gateResult) {
	st := d.st
	if r.stage != st.CurrentStage || int(r.stage) >= len(st.Stages) || st.Stages[r.stage].Phase != fleetv1.StageProgressing {
		return
	}
	sc := d.stageCtx(r.stage)
	var g *gate
	for _, cand := range sc.gates {
		if cand.spec.Name == r.gate {
			g = cand
		}
	}
	if g == nil {
		return
	}
	at := metav1.NewTime(r.at)
	sg := stageGate(sc.stage, r.gate, true)
	sg.Query, sg.LastMeasured, sg.Error = r.query, &at, ""
	sg.Measurements++
	if r.err != nil {
		sg.Error = r.err.Error()
	}
	for _, c := range d.measurable(r.stage, g) {
		o, why, value := outcomeInconclusive, "", ""
		if r.err != nil {
			why = "query failed: " + r.err.Error()
		} else {
			v, ok := r.value(c.Cluster)
			if ok {
				value = formatValue(v)
			}
			o, why = g.classify(v, ok)
		}
		cg := gateStatus(c, g.spec.Name, true)
		cg.Value = value
		switch o {
		case outcomeSuccessful:
			cg.Successful++
		case outcomeFailed:
			cg.Failed++
		default:
			cg.Inconclusive++
		}
		d.out.measurements = append(d.out.measurements, measurement{gate: g.spec.Name, outcome: o})
		dec := &fleetv1.RolloutDecision{Signal: fleetv1.SignalGate, Gate: g.spec.Name, Query: r.query, Value: value, Threshold: why, Time: at}
		switch g.state(cg) {
		case gateFailed:
			dec.Message = fmt.Sprintf("%d failed measurements, limit %d", cg.Failed, g.spec.FailureLimit)
			d.decide(c, fleetv1.VerdictFailed, dec)
		case gateInconclusive:
			dec.Message = fmt.Sprintf("%d inconclusive measurements, limit %d", cg.Inconclusive, g.spec.InconclusiveLimit)
			d.decide(c, fleetv1.VerdictInconclusive, dec)
		}
	}
}

// nextCheck is when the running stage next needs a look without any
// change to wake it: a gate's next measurement, a soak's end, a deadline.
func (d *decider) nextCheck() time.Duration {
	st := d.st
	if d.terminal() || d.stopped() || int(st.CurrentStage) >= len(st.Stages) || st.Stages[st.CurrentStage].Phase != fleetv1.StageProgressing {
		return 0
	}
	sc := d.stageCtx(st.CurrentStage)
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	// A gate with a cluster to measure is due its interval after the last
	// measurement, or now if it never measured. Without one, the work
	// change that makes a cluster ready wakes the controller.
	for _, g := range sc.gates {
		if len(d.measurable(sc.index, g)) == 0 {
			continue
		}
		if sg := stageGate(sc.stage, g.spec.Name, false); sg != nil && sg.LastMeasured != nil {
			soonest(sg.LastMeasured.Add(g.interval))
		} else {
			soonest(d.in.now)
		}
	}
	for _, c := range st.Clusters {
		if c.Stage != sc.index || c.UpdateTime == nil {
			continue
		}
		for _, g := range sc.gates {
			if at := c.UpdateTime.Add(g.spec.InitialDelay.Duration); d.in.now.Before(at) {
				soonest(at)
			}
		}
		switch c.Verdict {
		case fleetv1.VerdictVerifying:
			if c.SuccessTime != nil && sc.strategy.MinSuccessTime.Duration > 0 {
				soonest(c.SuccessTime.Add(sc.strategy.MinSuccessTime.Duration))
			}
		case fleetv1.VerdictProgressing:
			if dl := sc.strategy.ProgressDeadline; dl != nil && dl.Duration > 0 {
				soonest(c.UpdateTime.Add(dl.Duration))
			}
		}
	}
	if next.IsZero() {
		return 0
	}
	return max(next.Sub(d.in.now), 100*time.Millisecond)
}

// steady hands every decided cluster outside the running stage the
// revision it should run: the rollout's revision once its stage is done
// (or the rollout succeeded), the stable revision once rolled back, and
// the stable revision to a cluster with no work that waits its stage.
func (d *decider) steady() {
	st := d.st
	member := map[string]*fleetv1.ClusterRolloutStatus{}
	for k := range st.Clusters {
		member[st.Clusters[k].Cluster] = &st.Clusters[k]
	}
	for cluster, w := range d.in.works {
		if _, ok := d.out.apply[cluster]; ok || w.deleting {
			continue
		}
		c := member[cluster]
		var want int64
		switch {
		case st.Phase == fleetv1.RolloutSucceeded:
			want = st.Revision
		case c != nil && c.Verdict == fleetv1.VerdictRolledBack:
			want = st.PreviousRevision
		case c != nil && c.UpdateTime != nil:
			want = st.Revision
		case !w.exists && st.PreviousRevision != 0:
			want = st.PreviousRevision
		}
		if want != 0 && !(w.exists && d.in.hashes[want] != "" && w.hash == d.in.hashes[want]) {
			d.out.apply[cluster] = want
		}
	}
}
