package agentapi

import (
	"net/url"

	"github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Work distribution: the calling cluster's ManifestWorks (in the hub
// namespace of its own name), read and reported over mutual TLS with the
// certificate registration issued. A cluster never names another's works:
// the namespace comes from its certificate, and an explicit ?namespace= of
// another cluster is refused with 403.
//
//	GET    /api/v1/works?resourceVersion=<v>&timeout=30s  WorkList (200), or 304 when nothing
//	                                                       changed since <v> within the timeout
//	PUT    /api/v1/works/{name}/status                    WorkStatusRequest → 204
//	DELETE /api/v1/works/{name}/finalizer?uid=<uid>       204: the agent removed what the work
//	                                                       applied; the hub lets the work go
//
// The list call is a long poll: without resourceVersion, or with one that is
// no longer current, it answers at once; otherwise it waits until the list
// changes or the timeout (default 30s, at most 5m; 0 answers at once) ends.
// The list's ResourceVersion is opaque (it is also the ETag): it changes when
// a work is added, removed, edited (its generation) or starts deleting, not
// when only its status or metadata changes.
const (
	PathWorks = "/api/v1/works"
	// ParamResourceVersion, ParamTimeout and ParamNamespace are the list's
	// query parameters; ParamUID is the finalizer call's.
	ParamResourceVersion = "resourceVersion"
	ParamTimeout         = "timeout"
	ParamNamespace       = "namespace"
	ParamUID             = "uid"
)

// WorkStatusPath is the status endpoint of the named work.
func WorkStatusPath(name string) string { return PathWorks + "/" + url.PathEscape(name) + "/status" }

// WorkFinalizerPath is the finalizer endpoint of the named work.
func WorkFinalizerPath(name string) string {
	return PathWorks + "/" + url.PathEscape(name) + "/finalizer"
}

// WorkList is the calling cluster's works, sorted by name.
type WorkList struct {
	// ResourceVersion names this state of the list, for the next poll.
	ResourceVersion string     `json:"resourceVersion"`
	Items           []WorkItem `json:"items"`
}

// WorkItem is one ManifestWork as the agent needs it.
type WorkItem struct {
	Name       string                    `json:"name"`
	UID        string                    `json:"uid"`
	Generation int64                     `json:"generation"`
	Spec       v1alpha1.ManifestWorkSpec `json:"spec"`
	// Deleting is true once the work is deleted on the hub: the agent
	// removes what it applied (or leaves it, per spec.deleteOption) and then
	// calls the finalizer endpoint.
	Deleting bool `json:"deleting,omitempty"`
	// Status is the status the hub holds, so that a restarted agent keeps
	// its conditions' transition times and reports only changes.
	Status *v1alpha1.ManifestWorkStatus `json:"status,omitempty"`
}

// WorkStatusRequest reports a work's status. The hub writes it to the
// ManifestWork's status subresource when it differs from what is there.
type WorkStatusRequest struct {
	// UID is the work's UID as listed: a work deleted and created again
	// under the same name is a new work, and the report is refused (409).
	UID    string                      `json:"uid"`
	Status v1alpha1.ManifestWorkStatus `json:"status"`
}
