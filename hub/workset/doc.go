// Package workset runs the hub's ManifestWorkSet controller: it keeps one
// ManifestWork per cluster that the set's Placements decide, in that
// cluster's namespace, named as the ManifestWorkSet and labelled
// work.fleetpulse.io/manifestworkset=<namespace>.<name>.
//
// Every change of the template is a revision: a ManifestWorkSetRevision
// named <set>-<n>, numbered one past the latest, owned by the set, holding
// the template, its hash and who changed it and why (the set's
// fleetpulse.io/changed-by and fleetpulse.io/change-cause annotations, or
// the field manager that wrote the spec). Works carry the labels
// work.fleetpulse.io/revision and work.fleetpulse.io/template-hash; a work
// runs the newest revision whose hash its template has. Revisions past
// spec.revisionHistoryLimit (10) are deleted, oldest first, but never one a
// cluster still runs. Status names the current revision and counts the
// clusters per revision.
//
// A pass is level-triggered. It reads the decided clusters from the
// Placements' PlacementDecisions (a cluster decided by several placementRefs
// follows the first), deletes the works of clusters no longer decided, and
// creates or updates works from the template as each placementRef's
// rolloutStrategy allows:
//
//   - All (the default): every cluster at once.
//   - Progressive: at most maxConcurrency clusters (1 when unset) whose work
//     has the new template but is not yet Available for it (status.
//     observedGeneration = generation and Available True); the next clusters
//     follow as those become Available. A cluster newly decided joins the
//     queue like any other.
//   - ProgressivePerGroup: the Placement's decision groups in order, each
//     group all at once once every earlier group is Available.
//
// The works live in other namespaces than the ManifestWorkSet, so they carry
// no owner references: a finalizer deletes them when the set is deleted.
// A work of the same name that the set does not own is left alone and
// reported. Status counts the works (total, applied, available, degraded,
// from their conditions) and sets PlacementVerified, Progressing and
// Available.
package workset
