// Package policy is the agent's policy controller: it evaluates the
// Policies bound to this cluster against the cluster's objects, enforces
// those whose remediationAction is enforce, and produces each policy's
// status (the verdict, every template's verdict with the objects it found
// and what differs, the last 10 changes of the verdict).
//
// An Engine is built with New and runs with Run. Policies come from a
// Source and statuses go to a StatusSink, both interfaces, so that the
// transport to and from the hub is the caller's; policytest has in-memory
// ones for tests. The comparison of a template with objects (musthave,
// mustonlyhave, mustnothave) is package template's and talks to nothing.
//
//   - Scope: a template of a cluster-scoped kind is evaluated as it is; one
//     of a namespaced kind in its namespace, or, when it names none, in every
//     namespace the policy's namespaceSelector picks (include and exclude
//     name globs, and labels); without either it is Pending. Kinds map to
//     resources through the cluster's discovery, read again when a template
//     names a kind it does not know.
//   - Reads: one informer per resource some template reads, over all
//     namespaces (managed fields dropped), started when a template first
//     needs the resource and stopped when none does. Evaluations read the
//     caches; a change of an object a policy names makes that policy
//     evaluate again at once. Besides, each policy is evaluated again every
//     evaluationInterval: compliant (default 10m) or noncompliant (default
//     30s, also used while Pending), "never" for changes only.
//   - Enforce: a missing object is created (with the annotation
//     policy.fleetpulse.io/created-by=<namespace>/<name> of the policy); a
//     musthave difference is applied with server-side apply (field manager
//     fleetpulse-policy, forced, lists merged so nothing another writer
//     added is dropped); a mustonlyhave difference is an update of the whole
//     object that removes what the template does not hold; a mustnothave
//     match is deleted. A mustonlyhave difference that only the apiserver's
//     defaults make (a dry-run update, when informing, changes nothing the
//     template names) is no difference.
//   - Failures: a template that cannot be evaluated (invalid, a kind the
//     cluster does not serve, a list the agent may not make, a bad glob) is
//     Pending with the reason in its message, and holds back neither the
//     policy's other templates nor other policies. A failed write leaves the
//     object NonCompliant with the error in the message.
//   - Prune: a policy the Source lists as deleting is pruned per its
//     pruneObjectBehavior (Engine.Prune, also callable on its own), then
//     reported to the sink as pruned.
//   - Metrics, on the MeterProvider given: fleetpulse.policy.compliant
//     (gauge: 1, 0, -1 pending; policy, namespace, severity),
//     fleetpulse.policy.transitions (changes of verdict; policy, namespace,
//     compliant) and fleetpulse.policy.evaluation.duration (seconds per
//     policy evaluation). policy and namespace name the root policy (from a
//     replica's label policy.fleetpulse.io/root-policy), so that a policy's
//     series read the same on every cluster.
package policy
