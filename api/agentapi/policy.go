package agentapi

import (
	"net/url"

	"github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Policy distribution: the calling cluster's policy replicas (Policies in
// the hub namespace of the cluster's name, made by the hub's propagator),
// over the same mutual-TLS gateway and long-poll pattern as works:
//
//	GET    /api/v1/policies?resourceVersion=<v>&timeout=30s  PolicyList (200), or 304 when nothing
//	                                                          changed before the timeout
//	PUT    /api/v1/policies/{name}/status                    PolicyStatusRequest → 204
//	DELETE /api/v1/policies/{name}/finalizer?uid=<uid>       204: the agent has pruned what the
//	                                                          policy created; the hub lets it go
//
// The list's ResourceVersion changes when a replica is added, removed,
// edited (its generation) or starts deleting, not when only its status
// changes. The query parameters are the works' (ParamResourceVersion,
// ParamTimeout, ParamUID).
const PathPolicies = "/api/v1/policies"

// PolicyStatusPath is the status endpoint of the named policy replica.
func PolicyStatusPath(name string) string {
	return PathPolicies + "/" + url.PathEscape(name) + "/status"
}

// PolicyFinalizerPath is the finalizer endpoint of the named policy replica.
func PolicyFinalizerPath(name string) string {
	return PathPolicies + "/" + url.PathEscape(name) + "/finalizer"
}

// PolicyList is the calling cluster's policy replicas, sorted by name.
type PolicyList struct {
	// ResourceVersion names this state of the list, for the next poll.
	ResourceVersion string       `json:"resourceVersion"`
	Items           []PolicyItem `json:"items"`
}

// PolicyItem is one policy replica as the agent needs it.
type PolicyItem struct {
	// Name is the replica's: "<root namespace>.<root name>".
	Name       string `json:"name"`
	UID        string `json:"uid"`
	Generation int64  `json:"generation"`
	// Root names the root policy ("<namespace>.<name>"); RootNamespace and
	// RootName split it, for the agent's metric labels.
	RootNamespace string              `json:"rootNamespace"`
	RootName      string              `json:"rootName"`
	Annotations   map[string]string   `json:"annotations,omitempty"`
	Spec          v1alpha1.PolicySpec `json:"spec"`
	// Deleting is true once the replica is deleted on the hub: the agent
	// prunes per spec.pruneObjectBehavior and then calls the finalizer
	// endpoint.
	Deleting bool `json:"deleting,omitempty"`
	// Status is the status the hub holds, so that a restarted agent keeps
	// its history and reports only changes.
	Status *v1alpha1.PolicyStatus `json:"status,omitempty"`
}

// PolicyStatusRequest reports a replica's status. The hub writes it to the
// replica's status subresource when it differs from what is there.
type PolicyStatusRequest struct {
	// UID is the replica's UID as listed: a replica deleted and created
	// again under the same name is another object, and the report is
	// refused (409).
	UID    string                `json:"uid"`
	Status v1alpha1.PolicyStatus `json:"status"`
}
