// Package policy runs the hub's policy controllers: propagation of root
// Policies to the clusters their PlacementBindings decide, and the status
// that sums up what each cluster's agent reports.
//
// A root Policy is one a user writes, in any namespace that is not a
// cluster's. For every PlacementBinding of its namespace whose subjects name
// the policy (directly or through a PolicySet), the clusters that the
// binding's Placement decides get a replica: a Policy named
// "<root namespace>.<root name>" in the cluster's namespace, labelled
// policy.fleetpulse.io/root-policy=<root namespace>.<root name> and
// policy.fleetpulse.io/cluster=<cluster>. The replica's spec is the root's,
// except that its remediationAction is raised to enforce when a binding's
// override asks for it or an AlertRemediation enforces the policy on that
// cluster; nothing lowers a policy to inform.
//
// A cluster that the decisions drop loses its replica. A replica of a policy
// that prunes (pruneObjectBehavior other than None) carries the finalizer
// policy.fleetpulse.io/prune, which the cluster's agent removes through the
// gateway once it has pruned; the propagator removes it itself when the
// cluster is no longer registered, so nothing waits on an agent that is gone.
//
// The root's status lists each cluster's verdict (from the replica's status,
// which the agent writes), counts clusters by verdict, and is NonCompliant if
// any cluster is, else Pending if any is, else Compliant. A PolicySet's
// status does the same over its policies.
package policy
