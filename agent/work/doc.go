// Package work is the agent's side of work distribution: it long-polls the
// hub's gateway for this cluster's ManifestWorks (api/agentapi, work.go)
// over mutual TLS with the credentials registration keeps in the state
// folder, applies each work's manifests to the managed cluster in order,
// keeps them applied, reports their status, and removes exactly what a
// work applied when the work goes. In the agent, extensions/work runs it
// inside the Collector.
//
//   - Applying: client-go's dynamic client, with a RESTMapper read from the
//     cluster's discovery documents (read again when a kind is unknown, such
//     as a CRD's applied earlier in the same work). The update strategy is
//     per object (spec.manifestConfigs): ServerSideApply (the default; field
//     manager "fleetpulse-agent", Force as configured: without it a field
//     another manager took is a conflict, reported, not overwritten), Update
//     (get and replace; labels and annotations others added are kept),
//     CreateOnly (created if absent, then left alone) and ReadOnly (read for
//     status only). Applied objects carry the label
//     work.fleetpulse.io/applied=true.
//   - Records: what each work applied (object identities, UIDs and the hash
//     of the manifest applied) is kept in a ConfigMap per work in namespace
//     fleetpulse-agent on the managed cluster, written before an object is
//     created and after it is applied. Deletion goes by that record, with
//     the object's UID as a precondition, so an agent restart neither
//     orphans nor deletes anything, and an object someone else created under
//     the same name is never deleted.
//   - Removal: an object that leaves a work, or every object of a deleted
//     work (newest first), is deleted unless spec.deleteOption orphans it
//     (Orphan, or SelectivelyOrphan with the object listed); once the
//     objects are gone (an object's own finalizers may hold it a while) the
//     work is released at the hub (its finalizer removed). What the objects
//     own, such as a Deployment's Pods, the cluster's garbage collector
//     removes in the background. A record whose work the hub no longer lists
//     at all is cleaned up the same way.
//   - Drift: every work is applied again every sync interval (30 s), and at
//     once when an applied object changes (one informer per applied
//     resource, over the labelled objects only, keeping names and resource
//     versions). An apply that changes an object whose manifest did not
//     change is a corrected drift: the object's Applied condition says
//     DriftCorrected, status.lastDriftTime is set, and a Warning Event with
//     reason DriftCorrected is recorded on the object (and so reaches the
//     hub through the agent's events pipeline).
//   - Status: per object, Applied, Available (a Deployment when its
//     available replicas reach its desired replicas; anything else when it
//     exists) and Degraded (not applied, or not available), with status
//     feedback (WellKnownStatus for Deployments, StatefulSets, DaemonSets and
//     Jobs, and JSONPaths); the same three conditions for the whole work,
//     and Progressing: True (Applying, WaitingForAvailable) until every
//     object of the generation is applied and available, then False
//     (Completed). The status is sent only when it differs from what the
//     hub holds.
package work
