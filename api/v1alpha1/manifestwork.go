package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ManifestWork is a set of Kubernetes objects to apply on one managed
// cluster. It lives in the cluster's namespace on the hub; the cluster's
// agent fetches it over the gateway, applies it, reports each object's
// status back, and removes exactly what it applied when the work goes.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mw,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Applied",type=string,JSONPath=`.status.conditions[?(@.type=="Applied")].status`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Degraded",type=string,JSONPath=`.status.conditions[?(@.type=="Degraded")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ManifestWork struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ManifestWorkSpec   `json:"spec,omitempty"`
	Status ManifestWorkStatus `json:"status,omitempty"`
}

// ManifestWorkSpec is what to apply and how.
type ManifestWorkSpec struct {
	// Workload holds the objects.
	Workload ManifestsTemplate `json:"workload,omitempty"`
	// DeleteOption says what happens to applied objects when the work is
	// deleted or an object leaves it: Foreground (the default) deletes them,
	// Orphan leaves them all, SelectivelyOrphan leaves the listed ones.
	// +optional
	DeleteOption *DeleteOption `json:"deleteOption,omitempty"`
	// ManifestConfigs tune the update strategy and status feedback per object.
	// +optional
	ManifestConfigs []ManifestConfigOption `json:"manifestConfigs,omitempty"`
}

// ManifestsTemplate is a list of objects.
type ManifestsTemplate struct {
	// Manifests are full Kubernetes objects (CRDs, namespaced and
	// cluster-scoped objects), applied in order.
	// +optional
	Manifests []Manifest `json:"manifests,omitempty"`
}

// Manifest is one Kubernetes object, kept as given.
//
// +kubebuilder:validation:EmbeddedResource
// +kubebuilder:pruning:PreserveUnknownFields
type Manifest struct {
	runtime.RawExtension `json:",inline"`
}

// DeletePropagationPolicy names a delete option.
// +kubebuilder:validation:Enum=Foreground;Orphan;SelectivelyOrphan
type DeletePropagationPolicy string

const (
	DeleteForeground        DeletePropagationPolicy = "Foreground"
	DeleteOrphan            DeletePropagationPolicy = "Orphan"
	DeleteSelectivelyOrphan DeletePropagationPolicy = "SelectivelyOrphan"
)

// DeleteOption says what deleting the work does to applied objects.
type DeleteOption struct {
	// +kubebuilder:default=Foreground
	PropagationPolicy DeletePropagationPolicy `json:"propagationPolicy"`
	// SelectivelyOrphan lists the objects left in place with SelectivelyOrphan.
	// +optional
	SelectivelyOrphan []ResourceIdentifier `json:"selectivelyOrphan,omitempty"`
}

// ResourceIdentifier names one object of a work.
type ResourceIdentifier struct {
	// +optional
	Group    string `json:"group,omitempty"`
	Resource string `json:"resource"`
	Name     string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// UpdateStrategyType says how an object is applied.
// +kubebuilder:validation:Enum=ServerSideApply;Update;CreateOnly;ReadOnly
type UpdateStrategyType string

const (
	// UpdateServerSideApply applies with server-side apply as the agent's
	// field manager (the default): fields others own stay theirs.
	UpdateServerSideApply UpdateStrategyType = "ServerSideApply"
	// UpdateUpdate replaces the object (get + update).
	UpdateUpdate UpdateStrategyType = "Update"
	// UpdateCreateOnly creates the object and never touches it again.
	UpdateCreateOnly UpdateStrategyType = "CreateOnly"
	// UpdateReadOnly only reads the object, for status feedback.
	UpdateReadOnly UpdateStrategyType = "ReadOnly"
)

// ManifestConfigOption configures one object of the work.
type ManifestConfigOption struct {
	ResourceIdentifier ResourceIdentifier `json:"resourceIdentifier"`
	// +optional
	UpdateStrategy *UpdateStrategy `json:"updateStrategy,omitempty"`
	// FeedbackRules pick status fields to report back.
	// +optional
	FeedbackRules []FeedbackRule `json:"feedbackRules,omitempty"`
}

// UpdateStrategy says how to apply one object.
type UpdateStrategy struct {
	// +kubebuilder:default=ServerSideApply
	Type UpdateStrategyType `json:"type"`
	// Force takes over conflicting fields with server-side apply.
	// +optional
	Force bool `json:"force,omitempty"`
}

// FeedbackType names a kind of feedback rule.
// +kubebuilder:validation:Enum=WellKnownStatus;JSONPaths
type FeedbackType string

const (
	// FeedbackWellKnownStatus reports the usual status fields of
	// Deployments, StatefulSets, DaemonSets and Jobs.
	FeedbackWellKnownStatus FeedbackType = "WellKnownStatus"
	// FeedbackJSONPaths reports the fields the rule's paths select.
	FeedbackJSONPaths FeedbackType = "JSONPaths"
)

// FeedbackRule picks status fields of an object.
type FeedbackRule struct {
	Type FeedbackType `json:"type"`
	// +optional
	JSONPaths []JSONPath `json:"jsonPaths,omitempty"`
}

// JSONPath names a field, e.g. .status.readyReplicas.
type JSONPath struct {
	Name string `json:"name"`
	Path string `json:"path"`
}

// ManifestWorkStatus is what the agent reports.
type ManifestWorkStatus struct {
	// Conditions: Applied (every object applied), Available (every object
	// exists and, where it has a notion of it, is available), Degraded (an
	// object failed or is unhealthy) and Progressing.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Manifests holds one entry per object of the work, in order.
	// +optional
	Manifests []ManifestCondition `json:"manifests,omitempty"`
	// LastDriftTime is when the agent last found an applied object changed
	// behind its back and put it back.
	// +optional
	LastDriftTime *metav1.Time `json:"lastDriftTime,omitempty"`
	// ObservedGeneration is the work generation the agent applied.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ManifestCondition is the status of one object.
type ManifestCondition struct {
	ResourceMeta ManifestResourceMeta `json:"resourceMeta"`
	// +optional
	StatusFeedback []FeedbackValue `json:"statusFeedback,omitempty"`
	// Conditions: Applied, Available, Degraded.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ManifestResourceMeta identifies an object of the work.
type ManifestResourceMeta struct {
	Ordinal int32 `json:"ordinal"`
	// +optional
	Group    string `json:"group,omitempty"`
	Version  string `json:"version"`
	Kind     string `json:"kind"`
	Resource string `json:"resource,omitempty"`
	Name     string `json:"name"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// FeedbackValue is one reported field.
type FeedbackValue struct {
	Name string `json:"name"`
	// Value is the field as JSON (a number, string, boolean or object).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Value runtime.RawExtension `json:"value"`
}

// Work condition types.
const (
	WorkApplied     = "Applied"
	WorkAvailable   = "Available"
	WorkDegraded    = "Degraded"
	WorkProgressing = "Progressing"
)

// ManifestWorkList is a list of ManifestWorks.
//
// +kubebuilder:object:root=true
type ManifestWorkList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManifestWork `json:"items"`
}
