// Package workset runs the hub's ManifestWorkSet controller: it keeps one
// ManifestWork per cluster that the set's Placements decide, in that
// cluster's namespace, named as the ManifestWorkSet and labelled
// work.fleetpulse.io/manifestworkset=<namespace>.<name>, and rolls each
// change of the template out stage by stage, gated by the hub's telemetry.
//
// Revisions. Every change of the template is a revision: a
// ManifestWorkSetRevision named <set>-<n>, numbered one past the latest,
// owned by the set, holding the template, its hash and who changed it and
// why (the set's fleetpulse.io/changed-by and fleetpulse.io/change-cause
// annotations, or the field manager that wrote the spec). Works carry the
// labels work.fleetpulse.io/revision and work.fleetpulse.io/template-hash;
// a work runs the newest revision whose hash its template has. Revisions
// past spec.revisionHistoryLimit (10) are deleted, oldest first, but never
// the current, the stable one or one a cluster still runs.
//
// Rollouts. A new revision starts a rollout: the decided clusters are cut
// into stages (stages.go) — each placementRef in turn, its mandatory
// decision groups first, then one stage (All), batches of maxConcurrency
// (Progressive) or one stage per decision group (ProgressivePerGroup) — and
// that membership is kept in status.rollout, so clusters decided later join
// the last stage and clusters dropped leave without restarting it. A stage
// starts when the one before succeeded (unless spec.paused, or a
// RolloutApproval is required and missing): its clusters' works get the
// revision. A cluster succeeds when its work is Applied and Available for
// its generation (not Progressing, not Degraded: work.go), has been so for
// minSuccessTime, and has passed every gate; it fails when its work is
// Degraded, when it is not successful within progressDeadline, or when a
// gate fails it. A stage succeeds when every cluster has succeeded or
// failed within maxFailures; beyond the budget, failureStrategy decides:
// Pause (wait for fleetpulse.io/resume), Halt, or Rollback to the stable
// revision (the failed stage's clusters or all).
//
// Gates (gates.go, gaterun.go) are PromQL queries over the hub's store, run
// through the hub's QueryFunc every interval for the running stage, with
// the stage's clusters and the revision as template variables. Each
// measurement classifies each cluster's value by successCondition and
// failureCondition; no data and failed queries are inconclusive (unless
// noData says otherwise) and pause the rollout past inconclusiveLimit —
// they never pass. Each verdict records the signal that decided it, with
// the query, value and threshold, in status, in Events and in the
// fleetpulse_hub_rollout_* metrics.
//
// The decision logic (decide.go, measure.go) is pure: a pass reads the
// set, its works, revisions, decisions and approvals, runs the gates that
// are due, and hands decideRollout what it saw and the time; the pass then
// writes what it decided. Works are read from the apiserver rather than
// the cache, so that a pass counts the works the previous one wrote. The
// works live in other namespaces than the set, so they carry no owner
// references: a finalizer deletes them when the set is deleted.
package workset
