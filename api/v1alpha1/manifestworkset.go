package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ManifestWorkSet binds a ManifestWork template to Placements: it keeps one
// ManifestWork per decided cluster (in that cluster's namespace), rolls
// changes out all at once, progressively or per decision group, and
// summarises how the works are doing.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mws,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Revision",type=integer,JSONPath=`.status.currentRevision`
// +kubebuilder:printcolumn:name="Stable",type=integer,JSONPath=`.status.stableRevision`
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.status.rollout.phase`
// +kubebuilder:printcolumn:name="Placed",type=integer,JSONPath=`.status.summary.total`
// +kubebuilder:printcolumn:name="Available",type=integer,JSONPath=`.status.summary.available`
// +kubebuilder:printcolumn:name="Degraded",type=integer,JSONPath=`.status.summary.degraded`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ManifestWorkSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ManifestWorkSetSpec   `json:"spec,omitempty"`
	Status ManifestWorkSetStatus `json:"status,omitempty"`
}

// ManifestWorkSetSpec is the template and where it goes.
type ManifestWorkSetSpec struct {
	// ManifestWorkTemplate is the spec of every ManifestWork.
	ManifestWorkTemplate ManifestWorkSpec `json:"manifestWorkTemplate"`
	// Chart is a Helm chart the hub renders into the template: its objects
	// follow the template's own manifests. A change of the chart (version,
	// values) is a new revision, which holds the rendered objects.
	// +optional
	Chart *HelmChartSource `json:"chart,omitempty"`
	// PlacementRefs are Placements in this namespace.
	PlacementRefs []PlacementRef `json:"placementRefs"`
	// RevisionHistoryLimit is how many revisions are kept (10 when unset).
	// Revisions that a cluster still runs, and the last good one, are kept
	// beyond it.
	// +optional
	// +kubebuilder:validation:Minimum=1
	RevisionHistoryLimit *int32 `json:"revisionHistoryLimit,omitempty"`
	// Paused stops the rollout from going further: no stage starts and no
	// cluster gets the new revision. Gates of the running stage go on being
	// measured, and a failure is still acted on.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// HelmChartSource is a Helm chart in an HTTP chart repository or an OCI
// registry, and the values to render it with (as `helm template` would).
type HelmChartSource struct {
	// RepoURL is an HTTP(S) chart repository (the URL its index.yaml is
	// under) or oci://host/path, where the chart is host/path/<chart>.
	// +kubebuilder:validation:Pattern=`^(https?|oci)://`
	RepoURL string `json:"repoURL"`
	// Chart is the chart's name.
	// +kubebuilder:validation:MinLength=1
	Chart string `json:"chart"`
	// Version is the chart's version; in an HTTP repository also a semver
	// constraint (the newest match when the spec changes). Required for OCI.
	// +optional
	Version string `json:"version,omitempty"`
	// Values are merged over the chart's values.yaml.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	Values *runtime.RawExtension `json:"values,omitempty"`
	// ReleaseName is .Release.Name (default: the set's name).
	// +optional
	ReleaseName string `json:"releaseName,omitempty"`
	// Namespace is .Release.Namespace (default: default).
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// CredentialsSecretRef names a Secret in the set's namespace with the
	// keys username and password, for a private repository or registry.
	// +optional
	CredentialsSecretRef *LocalSecretReference `json:"credentialsSecretRef,omitempty"`
	// PlainHTTP reaches an OCI registry over HTTP instead of HTTPS.
	// +optional
	PlainHTTP bool `json:"plainHTTP,omitempty"`
}

// LocalSecretReference names a Secret in the referring object's namespace.
type LocalSecretReference struct {
	Name string `json:"name"`
}

// PlacementRef names a Placement and how to roll out to its decisions.
type PlacementRef struct {
	Name string `json:"name"`
	// +optional
	RolloutStrategy RolloutStrategy `json:"rolloutStrategy,omitempty"`
}

// ManifestWorkSetStatus summarises the works.
type ManifestWorkSetStatus struct {
	// ObservedGeneration is the generation of the spec the status is for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// CurrentRevision is the revision of the spec's template.
	// +optional
	CurrentRevision int64 `json:"currentRevision,omitempty"`
	// Revisions counts, for each revision some decided cluster runs, how
	// many do, newest first. Revision 0 counts works whose template is none
	// of the kept revisions (edited by hand).
	// +optional
	Revisions []RevisionClusters `json:"revisions,omitempty"`
	// StableRevision is the last revision whose rollout succeeded: what a
	// rollback goes back to.
	// +optional
	StableRevision int64 `json:"stableRevision,omitempty"`
	// Rollout is the rollout of the current revision.
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
	// +optional
	Summary WorkSummary `json:"summary,omitempty"`
	// Conditions: PlacementVerified, Progressing, Available, and
	// ChartRendered for a set with a chart.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// WorkSummary counts works by state.
type WorkSummary struct {
	Total     int32 `json:"total"`
	Applied   int32 `json:"applied"`
	Available int32 `json:"available"`
	Degraded  int32 `json:"degraded"`
}

// RevisionClusters counts the decided clusters whose work carries one
// revision.
type RevisionClusters struct {
	Revision int64 `json:"revision"`
	// Clusters run the revision; Available of them report it Available.
	Clusters  int32 `json:"clusters"`
	Available int32 `json:"available"`
}

// LabelManifestWorkSet marks the works a ManifestWorkSet owns.
const LabelManifestWorkSet = "work.fleetpulse.io/manifestworkset"

// ManifestWorkSetList is a list of ManifestWorkSets.
//
// +kubebuilder:object:root=true
type ManifestWorkSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManifestWorkSet `json:"items"`
}
