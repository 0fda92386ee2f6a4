// Package work is the hub's side of work distribution: it serves each
// cluster's ManifestWorks (fleetpulse.io/v1alpha1, in the hub namespace of
// the cluster's name) to that cluster's agent over the agents' mutual-TLS
// gateway, writes the status the agent reports, and holds a deleted work
// until the agent has removed what it applied.
//
// Endpoints (wire format in api/agentapi, work.go) on the agents' gateway
// (hub/gateway), for the calling cluster only, as the gateway authenticated
// it from its client certificate:
//
//   - GET /api/v1/works: a long poll over the controller-runtime cache of
//     ManifestWorks. An informer event handler wakes the waiters of the
//     changed work's namespace, so an edit reaches the agent as soon as the
//     cache has it.
//   - PUT /api/v1/works/{name}/status: the status subresource is written
//     when the report differs from it.
//   - DELETE /api/v1/works/{name}/finalizer: the agent has cleaned up.
//
// Deletion: a controller puts the finalizer work.fleetpulse.io/cleanup on
// every ManifestWork whose cluster is registered, and the gateway serves
// only works that carry it, so the agent never applies a work whose deletion
// the hub would not wait for. A deleted work stays (Terminating, listed with
// Deleting) until the agent reports its objects deleted or orphaned. When
// the cluster is deregistered (its ManagedCluster deleted) no agent will
// report again: the controller removes the finalizer and the objects stay on
// that cluster. A cluster that is merely unreachable keeps its deleted works
// Terminating for as long as it is away; its agent cleans up when it comes
// back. Removing the finalizer by hand lets the work go at once; the agent
// still removes its objects when it returns, because it keeps its own record
// of what it applied and deletes what no listed work owns.
package work
