package workset

import (
	"errors"
	"slices"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

var rolloutPhases = []fleetv1.RolloutPhase{
	fleetv1.RolloutProgressing, fleetv1.RolloutWaitingApproval, fleetv1.RolloutPaused,
	fleetv1.RolloutSucceeded, fleetv1.RolloutHalted, fleetv1.RolloutRolledBack,
}

var verdicts = []fleetv1.ClusterVerdict{
	fleetv1.VerdictPending, fleetv1.VerdictProgressing, fleetv1.VerdictVerifying, fleetv1.VerdictSucceeded,
	fleetv1.VerdictFailed, fleetv1.VerdictInconclusive, fleetv1.VerdictRolledBack,
}

// metrics are the rollouts' series, fleetpulse_hub_rollout_*, labelled by
// the set's namespace and name. Gauges describe each set's current
// rollout; a deleted set's label values go with it.
type metrics struct {
	phase         *prometheus.GaugeVec
	revision      *prometheus.GaugeVec
	stage         *prometheus.GaugeVec
	stages        *prometheus.GaugeVec
	stageStarted  *prometheus.GaugeVec
	clusters      *prometheus.GaugeVec
	revClusters   *prometheus.GaugeVec
	gateValue     *prometheus.GaugeVec
	measurements  *prometheus.CounterVec
	decisions     *prometheus.CounterVec
	queryDuration prometheus.Histogram
	passDuration  prometheus.Histogram

	mu sync.Mutex
	// seen remembers the label values set per set, to delete those that
	// went (a revision no cluster runs, a cluster that left the stage).
	seen map[string]seenLabels
}

type seenLabels struct {
	revisions []string
	gates     [][2]string // gate, cluster
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	set := []string{"namespace", "name"}
	gauge := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "fleetpulse", Subsystem: "hub_rollout", Name: name, Help: help},
			append(append([]string{}, set...), labels...))
	}
	m := &metrics{
		phase:        gauge("phase", "1 for the phase the set's current rollout is in, 0 for the others.", "phase"),
		revision:     gauge("revision", "The set's current (rolling out) and stable (last good) revision.", "kind"),
		stage:        gauge("stage", "The running or next stage of the current rollout, counted from 1; stages+1 once done."),
		stages:       gauge("stages", "How many stages the current rollout has."),
		stageStarted: gauge("stage_start_timestamp_seconds", "When the running stage started (0 before the first)."),
		clusters:     gauge("clusters", "Clusters of the current rollout by verdict.", "verdict"),
		revClusters:  gauge("revision_clusters", "Decided clusters whose work runs each revision (0: none kept).", "revision"),
		gateValue:    gauge("gate_value", "A gate's last measured value for each measured cluster of the running stage.", "gate", "cluster"),
		measurements: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "fleetpulse", Subsystem: "hub_rollout", Name: "gate_measurements_total",
			Help: "Gate measurements of clusters by outcome: successful, failed or inconclusive."}, append(append([]string{}, set...), "gate", "outcome")),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "fleetpulse", Subsystem: "hub_rollout", Name: "decisions_total",
			Help: "Cluster verdicts decided, by verdict and the signal that decided it (Work, ProgressDeadline, Gate)."}, append(append([]string{}, set...), "verdict", "signal")),
		queryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "fleetpulse", Subsystem: "hub_rollout", Name: "gate_query_duration_seconds",
			Help: "How long gate queries take.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "fleetpulse", Subsystem: "hub_rollout", Name: "reconcile_duration_seconds",
			Help: "How long one pass over a ManifestWorkSet takes, gate queries included.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
		seen: map[string]seenLabels{},
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.phase, m.revision, m.stage, m.stages, m.stageStarted, m.clusters, m.revClusters,
		m.gateValue, m.measurements, m.decisions, m.queryDuration, m.passDuration} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}

// observe sets a set's gauges from its status.
func (m *metrics) observe(ns, name string, st *fleetv1.ManifestWorkSetStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := ns + "/" + name
	prev := m.seen[key]
	next := seenLabels{}
	m.revision.WithLabelValues(ns, name, "current").Set(float64(st.CurrentRevision))
	m.revision.WithLabelValues(ns, name, "stable").Set(float64(st.StableRevision))
	for _, rc := range st.Revisions {
		rev := strconv.FormatInt(rc.Revision, 10)
		next.revisions = append(next.revisions, rev)
		m.revClusters.WithLabelValues(ns, name, rev).Set(float64(rc.Clusters))
	}
	ro := st.Rollout
	counts := map[fleetv1.ClusterVerdict]int{}
	if ro != nil {
		for _, p := range rolloutPhases {
			m.phase.WithLabelValues(ns, name, string(p)).Set(b2f(ro.Phase == p))
		}
		m.stage.WithLabelValues(ns, name).Set(float64(ro.CurrentStage + 1))
		m.stages.WithLabelValues(ns, name).Set(float64(len(ro.Stages)))
		started := 0.0
		if int(ro.CurrentStage) < len(ro.Stages) {
			if s := ro.Stages[ro.CurrentStage]; s.StartTime != nil {
				started = float64(s.StartTime.Unix())
			}
		}
		m.stageStarted.WithLabelValues(ns, name).Set(started)
		for _, c := range ro.Clusters {
			counts[c.Verdict]++
			if c.Stage != ro.CurrentStage {
				continue
			}
			for _, g := range c.Gates {
				v, err := strconv.ParseFloat(g.Value, 64)
				if err != nil {
					continue
				}
				next.gates = append(next.gates, [2]string{g.Name, c.Cluster})
				m.gateValue.WithLabelValues(ns, name, g.Name, c.Cluster).Set(v)
			}
		}
	}
	for _, v := range verdicts {
		m.clusters.WithLabelValues(ns, name, string(v)).Set(float64(counts[v]))
	}
	for _, rev := range prev.revisions {
		if !slices.Contains(next.revisions, rev) {
			m.revClusters.DeleteLabelValues(ns, name, rev)
		}
	}
	for _, g := range prev.gates {
		if !slices.Contains(next.gates, g) {
			m.gateValue.DeleteLabelValues(ns, name, g[0], g[1])
		}
	}
	m.seen[key] = next
}

// count adds a pass's measurements and decisions.
func (m *metrics) count(ns, name string, out rolloutOutput) {
	for _, ms := range out.measurements {
		m.measurements.WithLabelValues(ns, name, ms.gate, ms.outcome.String()).Inc()
	}
	for _, d := range out.decisions {
		m.decisions.WithLabelValues(ns, name, string(d.verdict), d.signal).Inc()
	}
}

// forget deletes a set's series.
func (m *metrics) forget(ns, name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	match := prometheus.Labels{"namespace": ns, "name": name}
	for _, v := range []*prometheus.GaugeVec{m.phase, m.revision, m.stage, m.stages, m.stageStarted, m.clusters, m.revClusters, m.gateValue} {
		v.DeletePartialMatch(match)
	}
	m.measurements.DeletePartialMatch(match)
	m.decisions.DeletePartialMatch(match)
	delete(m.seen, ns+"/"+name)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
