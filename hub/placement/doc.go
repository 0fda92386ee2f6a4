// Package placement runs the hub's Placement controller: it turns every
// Placement into PlacementDecisions naming the managed clusters it selects.
//
// A pass is level-triggered and recomputes the whole decision from what the
// control plane holds now:
//
//   - Candidates are the accepted ManagedClusters, not being deleted, that
//     belong to one of spec.clusterSets (membership as the ClusterSet
//     controller counts it: the set's clusterSelector, or else the label
//     cluster.fleetpulse.io/clusterset=<set>). An empty spec.clusterSets means
//     the members of every ClusterSet that exists; a cluster in no set is
//     never selected, and a named set that does not exist contributes nothing
//     (the Satisfied condition says so).
//   - A candidate must match one of spec.predicates (label selector and claim
//     selector over status.clusterClaims, both when given; no predicates match
//     everything) and tolerate every taint of effect NoSelect, and of effect
//     NoSelectIfNew unless the placement already holds it. A toleration with
//     tolerationSeconds tolerates a taint until timeAdded + tolerationSeconds
//     (a taint without timeAdded counts as added long ago); the controller
//     comes back when that runs out. Untolerated PreferNoSelect taints put a
//     cluster behind every other candidate, whatever its score.
//   - Candidates are scored by the prioritizers (Balance, Steady,
//     ResourceAllocatableCPU, ResourceAllocatableMemory, PromQL), each in
//     [-100, 100] over the candidates, times its weight, summed.
//   - The best spec.numberOfClusters are selected, ties broken by name;
//     without numberOfClusters every candidate is.
//   - spec.spreadPolicy.spreadConstraints spread the selection over the
//     values of a label or claim (the domains present among the
//     candidates): no domain holds more than maxSkew clusters above the
//     least-selected domain that still has candidates left. A domain whose
//     candidates are all selected holds no one back, and a candidate without
//     the key is neither counted nor limited. Within that, the best score
//     wins; a spread that cannot be met (conflicting constraints) is met as
//     nearly as one swap at a time allows, and the Satisfied message says so.
//
// The decision is sticky. A selected cluster that stops qualifying is
// replaced at once, but a selected cluster that still qualifies is replaced
// by a better one only if the newcomer's total beats it by more than
// spec.rescheduling.hysteresis, and not sooner than minInterval after the
// last move caused by scores (status.lastRescheduleTime), and only where the
// spread allows. When a PromQL query fails, no move is made on scores in that
// pass. A selection the spread constraints no longer accept (a relabelled
// cluster, a new domain) moves at once, by as few swaps as it takes, the
// worst of a crowded domain giving way.
//
// Decisions are written as PlacementDecisions <placement>-decision-<i> (i
// from 1; at most 100 clusters each, sorted by name), labelled with the
// placement's name and decision group (cluster.fleetpulse.io/* and the
// multicluster.x-k8s.io/* labels of KEP-5313, whose decision-index counts from
// 0) and owned by the Placement, so deleting it deletes them. A kept
// cluster's decision keeps the reason it was chosen for, and its score is
// the cluster's current one, written only when it changes (and left as it is
// while a PromQL query fails). Each change of the decision is recorded as an
// Event on the Placement naming the clusters and scores.
package placement
