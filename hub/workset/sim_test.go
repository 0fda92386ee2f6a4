package workset

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// sim drives decideRollout through passes on a clock the test moves, with
// works that do what the test says: a work the decider hands a revision
// starts progressing, not yet applied.
type sim struct {
	t     *testing.T
	now   time.Time
	in    rolloutInput
	st    *fleetv1.RolloutStatus
	out   rolloutOutput
	works map[string]*simWork
	// events of every pass, "Reason: message".
	events []string
}

type simWork struct {
	rev     int64
	outcome workOutcome
	applied bool
}

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func hashOfRev(n int64) string { return fmt.Sprintf("h%d", n) }

// newSim starts revision 2 over refs, every decided cluster running
// revision 1 successfully (the stable one) unless stable is 0.
func newSim(t *testing.T, stable int64, refs ...refPlan) *sim {
	s := &sim{t: t, now: t0, works: map[string]*simWork{}}
	s.in = rolloutInput{revision: 2, stable: stable, refs: refs, hashes: map[int64]string{}}
	for n := int64(1); n <= 9; n++ {
		s.in.hashes[n] = hashOfRev(n)
	}
	var problems []string
	s.in.gates, s.in.invalid = parseGates(refs)
	if s.in.invalid != "" {
		problems = append(problems, s.in.invalid)
	}
	if len(problems) > 0 {
		t.Fatalf("gates: %v", problems)
	}
	if stable != 0 {
		for _, ref := range refs {
			for _, tg := range ref.targets {
				s.works[tg.cluster] = &simWork{rev: stable, outcome: workSucceeded, applied: true}
			}
		}
	}
	return s
}

func (s *sim) decided() []string {
	var out []string
	for _, ref := range s.in.refs {
		out = append(out, names(ref.targets)...)
	}
	return out
}

// pass runs one pass at the sim's time with the given gate results, and
// hands out the revisions it decided.
func (s *sim) pass(results ...gateResult) {
	s.t.Helper()
	in := s.in
	in.now = s.now
	in.results = results
	in.works = map[string]workObs{}
	for _, c := range s.decided() {
		w := s.works[c]
		if w == nil {
			in.works[c] = workObs{}
			continue
		}
		in.works[c] = workObs{exists: true, hash: hashOfRev(w.rev), revision: w.rev, current: w.rev == in.revision, applied: w.applied,
			outcome: w.outcome, message: fmt.Sprintf("revision %d outcome %d", w.rev, w.outcome)}
	}
	s.st, s.out = decideRollout(s.st, &in)
	for c, rev := range s.out.apply {
		if w := s.works[c]; w == nil || w.rev != rev {
			s.works[c] = &simWork{rev: rev}
		}
	}
	s.in.stable = s.out.stable
	for _, e := range s.out.events {
		s.events = append(s.events, e.reason+": "+e.message)
	}
}

// set gives clusters' works an outcome for the revision they run, as
// their agents report it.
func (s *sim) set(o workOutcome, clusters ...string) {
	for _, c := range clusters {
		w := s.works[c]
		if w == nil {
			s.t.Fatalf("%s has no work", c)
		}
		w.outcome, w.applied = o, true
	}
}

func (s *sim) after(d time.Duration) *sim { s.now = s.now.Add(d); return s }

// verdicts lists each cluster's verdict, by stage.
func (s *sim) verdicts() string {
	var out []string
	for _, c := range s.st.Clusters {
		out = append(out, fmt.Sprintf("%d:%s=%s", c.Stage, c.Cluster, c.Verdict))
	}
	return strings.Join(out, " ")
}

// revs lists each decided cluster's work revision.
func (s *sim) revs() string {
	var out []string
	for _, c := range s.decided() {
		if w := s.works[c]; w != nil {
			out = append(out, fmt.Sprintf("%s=%d", c, w.rev))
		} else {
			out = append(out, c+"=-")
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func (s *sim) expect(phase fleetv1.RolloutPhase, stage int32, verdicts, revs string) {
	s.t.Helper()
	if s.st.Phase != phase || s.st.CurrentStage != stage || s.verdicts() != verdicts || s.revs() != revs {
		s.t.Fatalf("phase %s (%s: %s), stage %d\n  verdicts %s\n  works    %s\nwant phase %s, stage %d\n  verdicts %s\n  works    %s\nevents:\n  %s",
			s.st.Phase, s.st.Reason, s.st.Message, s.st.CurrentStage, s.verdicts(), s.revs(), phase, stage, verdicts, revs, strings.Join(s.events, "\n  "))
	}
}

func (s *sim) cluster(name string) *fleetv1.ClusterRolloutStatus {
	for i := range s.st.Clusters {
		if s.st.Clusters[i].Cluster == name {
			return &s.st.Clusters[i]
		}
	}
	s.t.Fatalf("%s is not in the rollout", name)
	return nil
}

// measure is a gate result of the running stage at the sim's time, with
// values by cluster.
func (s *sim) measure(gate string, values map[string]float64) gateResult {
	return gateResult{stage: s.st.CurrentStage, gate: gate, query: "q{" + gate + "}", at: s.now, values: values}
}

// due names the gates dueGates would run now.
func (s *sim) due() []string {
	in := s.in
	in.now = s.now
	in.works = map[string]workObs{}
	for _, c := range s.decided() {
		if w := s.works[c]; w != nil {
			in.works[c] = workObs{exists: true, hash: hashOfRev(w.rev), current: w.rev == in.revision, applied: w.applied, outcome: w.outcome}
		}
	}
	var out []string
	for _, r := range dueGates(s.st, &in, "apps", "web") {
		out = append(out, r.gate.spec.Name)
	}
	return out
}
