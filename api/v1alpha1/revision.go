package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManifestWorkSetRevision is one numbered, immutable version of a
// ManifestWorkSet's template: the hub writes one each time the template
// changes, named <set>-<revision> in the set's namespace, and never changes
// it (the API server refuses updates of its spec). Works name the revision
// they carry; a rollback hands clusters an earlier revision's template.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=mwsrev,categories=fleetpulse
// +kubebuilder:printcolumn:name="Set",type=string,JSONPath=`.spec.manifestWorkSet`
// +kubebuilder:printcolumn:name="Revision",type=integer,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Hash",type=string,JSONPath=`.spec.templateHash`
// +kubebuilder:printcolumn:name="By",type=string,JSONPath=`.spec.changedBy`
// +kubebuilder:printcolumn:name="Cause",type=string,JSONPath=`.spec.changeCause`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ManifestWorkSetRevision struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ManifestWorkSetRevisionSpec `json:"spec"`
}

// ManifestWorkSetRevisionSpec is what a revision holds; all of it is fixed
// when the revision is written.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a revision is immutable"
type ManifestWorkSetRevisionSpec struct {
	// ManifestWorkSet names the set, in this namespace.
	ManifestWorkSet string `json:"manifestWorkSet"`
	// Revision numbers the set's revisions from 1, one more for each change.
	// +kubebuilder:validation:Minimum=1
	Revision int64 `json:"revision"`
	// TemplateHash identifies the template: the SHA-256 of its JSON with
	// sorted keys, in hex, cut to 16 characters. Works carry it in the label
	// work.fleetpulse.io/template-hash.
	TemplateHash string `json:"templateHash"`
	// ManifestWorkTemplate is the spec every cluster's ManifestWork gets,
	// with a chart source already rendered into its manifests.
	ManifestWorkTemplate ManifestWorkSpec `json:"manifestWorkTemplate"`
	// SourceHash identifies what the revision was made from when it differs
	// from the template: the set's template and chart source, hashed as the
	// template is. A set with a chart renders anew only when it changes.
	// +optional
	SourceHash string `json:"sourceHash,omitempty"`
	// Chart is the chart rendered into the template.
	// +optional
	Chart *RenderedChart `json:"chart,omitempty"`
	// ChangeCause is why, from the set's fleetpulse.io/change-cause
	// annotation when the revision was written.
	// +optional
	ChangeCause string `json:"changeCause,omitempty"`
	// ChangedBy is who: the set's fleetpulse.io/changed-by annotation, else
	// the field manager that last wrote the set's spec (kubectl-edit,
	// fleetpulse, ...).
	// +optional
	ChangedBy string `json:"changedBy,omitempty"`
	// RollbackOf is the revision whose template this one restores, when a
	// rollback wrote it (the set's fleetpulse.io/rollback-of annotation).
	// +optional
	RollbackOf int64 `json:"rollbackOf,omitempty"`
}

// RenderedChart records the chart a revision holds.
type RenderedChart struct {
	// URL is where the archive came from (an OCI reference for a registry).
	URL string `json:"url"`
	// Chart and Version are the chart's name and resolved version.
	Chart   string `json:"chart"`
	Version string `json:"version"`
	// Digest is the archive's sha256:<hex>.
	// +optional
	Digest string `json:"digest,omitempty"`
	// Objects counts the rendered objects; SkippedHooks the hooks left out.
	Objects int32 `json:"objects"`
	// +optional
	SkippedHooks int32 `json:"skippedHooks,omitempty"`
	// Source is the set's chart source the revision was rendered from. The
	// rendered objects are the template's last Objects manifests; those
	// before them are the set's own. A rollback puts both back, and the hub
	// reuses this revision's objects instead of fetching the chart again.
	Source HelmChartSource `json:"source"`
}

// ConditionChartRendered is the ManifestWorkSet condition that says whether
// its chart was fetched and rendered into the current revision; when not,
// the reason names what was wrong (chartsource's reasons) and the previous
// revision goes on.
const ConditionChartRendered = "ChartRendered"

// Annotations a user (or `fleetpulse app`) sets on a ManifestWorkSet with a
// change of its template; the revision the change makes records them.
const (
	AnnotationChangeCause = "fleetpulse.io/change-cause"
	AnnotationChangedBy   = "fleetpulse.io/changed-by"
	AnnotationRollbackOf  = "fleetpulse.io/rollback-of"
)

// Labels of the works a ManifestWorkSet writes, and of its revisions.
const (
	// LabelRevision is the number of the revision a work carries.
	LabelRevision = "work.fleetpulse.io/revision"
	// LabelTemplateHash is that revision's template hash.
	LabelTemplateHash = "work.fleetpulse.io/template-hash"
)

// ManifestWorkSetRevisionList is a list of ManifestWorkSetRevisions.
//
// +kubebuilder:object:root=true
type ManifestWorkSetRevisionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManifestWorkSetRevision `json:"items"`
}
