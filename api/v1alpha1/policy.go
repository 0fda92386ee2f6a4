package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Policy states configuration that every cluster it is bound to must carry
// (objects that must exist, must exist exactly, or must not exist), and
// whether the agent only reports drift (inform) or corrects it (enforce).
//
// A Policy written by a user is a root policy. A PlacementBinding binds it to
// the clusters a Placement decides; the hub then keeps one replicated Policy
// per cluster in that cluster's namespace, named "<root namespace>.<root
// name>", which the cluster's agent fetches, evaluates and reports on. The
// root policy's status sums up its replicas. The shapes follow the Open
// Cluster Management governance API, so its users recognise them; the
// standards, categories and controls of a policy are the annotations
// policy.open-cluster-management.io/standards, /categories and /controls
// (comma-separated).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Remediation",type=string,JSONPath=`.spec.remediationAction`
// +kubebuilder:printcolumn:name="Compliance",type=string,JSONPath=`.status.compliant`
// +kubebuilder:printcolumn:name="Compliant",type=integer,JSONPath=`.status.summary.compliant`
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.summary.clusters`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Policy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PolicySpec   `json:"spec,omitempty"`
	Status PolicyStatus `json:"status,omitempty"`
}

// RemediationAction says what the agent does about a difference.
// +kubebuilder:validation:Enum=inform;enforce;Inform;Enforce
type RemediationAction string

const (
	// RemediationInform reports differences and changes nothing.
	RemediationInform RemediationAction = "inform"
	// RemediationEnforce makes the cluster match the templates.
	RemediationEnforce RemediationAction = "enforce"
)

// Severity ranks how much a violation matters.
// +kubebuilder:validation:Enum=low;medium;high;critical
type Severity string

const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// PolicySpec is what a cluster must carry.
type PolicySpec struct {
	// RemediationAction is inform (the default) or enforce.
	// +optional
	// +kubebuilder:default=inform
	RemediationAction RemediationAction `json:"remediationAction,omitempty"`
	// Severity of a violation: low, medium (the default), high or critical.
	// +optional
	// +kubebuilder:default=medium
	Severity Severity `json:"severity,omitempty"`
	// Disabled policies are not propagated; their replicas are removed.
	// +optional
	Disabled bool `json:"disabled,omitempty"`
	// ObjectTemplates are the objects the policy is about.
	// +kubebuilder:validation:MinItems=1
	ObjectTemplates []ObjectTemplate `json:"objectTemplates"`
	// NamespaceSelector picks the namespaces where templates of namespaced
	// kinds that name no namespace apply.
	// +optional
	NamespaceSelector *PolicyNamespaceSelector `json:"namespaceSelector,omitempty"`
	// EvaluationInterval is how often a template is evaluated again besides
	// when the objects it names change.
	// +optional
	EvaluationInterval EvaluationInterval `json:"evaluationInterval,omitempty"`
	// PruneObjectBehavior says what happens, in enforce mode, to the objects
	// the policy created when the policy leaves the cluster: None (the
	// default) leaves them, DeleteIfCreated deletes those it created,
	// DeleteAll deletes every object its musthave and mustonlyhave
	// templates name.
	// +optional
	// +kubebuilder:default=None
	PruneObjectBehavior PruneObjectBehavior `json:"pruneObjectBehavior,omitempty"`
}

// ComplianceType says how a template is compared with the cluster.
// +kubebuilder:validation:Enum=musthave;mustonlyhave;mustnothave;MustHave;MustOnlyHave;MustNotHave
type ComplianceType string

const (
	// MustHave: the object exists and carries the template's fields (lists
	// contain the template's items; other fields are free).
	MustHave ComplianceType = "musthave"
	// MustOnlyHave: the object exists and the template's top-level fields
	// match exactly (no extra keys or list items under them).
	MustOnlyHave ComplianceType = "mustonlyhave"
	// MustNotHave: no object matching the template exists.
	MustNotHave ComplianceType = "mustnothave"
)

// RecordDiff says whether the differences found are kept in status.
// +kubebuilder:validation:Enum=None;InStatus
type RecordDiff string

const (
	RecordDiffNone     RecordDiff = "None"
	RecordDiffInStatus RecordDiff = "InStatus"
)

// ObjectTemplate is one object the policy is about.
type ObjectTemplate struct {
	// ComplianceType is musthave, mustonlyhave or mustnothave.
	ComplianceType ComplianceType `json:"complianceType"`
	// ObjectDefinition is the object, or the part of it that matters. It
	// names apiVersion and kind; metadata.name may be left out to match
	// every object of the kind (mustnothave, or musthave to check all).
	// +kubebuilder:validation:EmbeddedResource
	// +kubebuilder:pruning:PreserveUnknownFields
	ObjectDefinition runtime.RawExtension `json:"objectDefinition"`
	// RecordDiff InStatus (the default) keeps the differing fields in
	// status; values of Secrets are never shown.
	// +optional
	// +kubebuilder:default=InStatus
	RecordDiff RecordDiff `json:"recordDiff,omitempty"`
}

// PolicyNamespaceSelector picks namespaces by name glob and label.
type PolicyNamespaceSelector struct {
	// Include lists name globs ("team-*"); empty includes every namespace
	// that MatchLabels and MatchExpressions select.
	// +optional
	Include []string `json:"include,omitempty"`
	// Exclude lists name globs taken out of the selection.
	// +optional
	Exclude []string `json:"exclude,omitempty"`
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// +optional
	MatchExpressions []metav1.LabelSelectorRequirement `json:"matchExpressions,omitempty"`
}

// EvaluationInterval is how often templates are evaluated again, per state.
// Durations as Go writes them ("30s", "10m"); "never" evaluates again only
// when watched objects change.
type EvaluationInterval struct {
	// Compliant is the interval while compliant; default 10m.
	// +optional
	Compliant string `json:"compliant,omitempty"`
	// NonCompliant is the interval while not compliant; default 30s.
	// +optional
	NonCompliant string `json:"noncompliant,omitempty"`
}

// PruneObjectBehavior names what leaving a cluster does to objects.
// +kubebuilder:validation:Enum=None;DeleteIfCreated;DeleteAll
type PruneObjectBehavior string

const (
	PruneNone            PruneObjectBehavior = "None"
	PruneDeleteIfCreated PruneObjectBehavior = "DeleteIfCreated"
	PruneDeleteAll       PruneObjectBehavior = "DeleteAll"
)

// ComplianceState is a policy's verdict on a cluster.
// +kubebuilder:validation:Enum=Compliant;NonCompliant;Pending
type ComplianceState string

const (
	Compliant    ComplianceState = "Compliant"
	NonCompliant ComplianceState = "NonCompliant"
	// Pending: not yet evaluated, or the template could not be evaluated.
	Pending ComplianceState = "Pending"
)

// PolicyStatus is, on a root policy, the sum of its replicas, and on a
// replica, what the cluster's agent found.
type PolicyStatus struct {
	// Compliant is the overall verdict: NonCompliant if any cluster (or
	// template) is, else Pending if any is, else Compliant.
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// Summary counts clusters by verdict (root policies).
	// +optional
	Summary *ComplianceSummary `json:"summary,omitempty"`
	// Clusters holds each cluster's verdict (root policies).
	// +optional
	// +listType=map
	// +listMapKey=cluster
	Clusters []ClusterCompliance `json:"clusters,omitempty"`
	// Templates holds each template's verdict and the objects it found
	// (replicas).
	// +optional
	Templates []TemplateStatus `json:"templates,omitempty"`
	// History is the last 10 changes of the verdict, newest first (replicas).
	// +optional
	History []ComplianceEvent `json:"history,omitempty"`
	// LastEvaluated is when the agent last evaluated the templates (replicas).
	// +optional
	LastEvaluated *metav1.Time `json:"lastEvaluated,omitempty"`
	// ObservedGeneration is the generation the status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ComplianceSummary counts clusters by verdict.
type ComplianceSummary struct {
	Clusters     int32 `json:"clusters"`
	Compliant    int32 `json:"compliant"`
	NonCompliant int32 `json:"noncompliant"`
	Pending      int32 `json:"pending"`
}

// ClusterCompliance is one cluster's verdict on a root policy.
type ClusterCompliance struct {
	Cluster string `json:"cluster"`
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// RemediationAction is what the cluster's replica does (a binding or an
	// alert may raise it to enforce).
	// +optional
	RemediationAction RemediationAction `json:"remediationAction,omitempty"`
	// Message is the replica's latest verdict message.
	// +optional
	Message string `json:"message,omitempty"`
}

// TemplateStatus is one template's verdict on one cluster.
type TemplateStatus struct {
	// Index is the template's position in spec.objectTemplates.
	Index int32 `json:"index"`
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// Message says what was found, or why the template could not be
	// evaluated (unknown kind, invalid object, forbidden).
	// +optional
	Message string `json:"message,omitempty"`
	// RelatedObjects are the objects the template matched or requires.
	// +optional
	RelatedObjects []RelatedObject `json:"relatedObjects,omitempty"`
}

// RelatedObject is one object a template is about, and what differs.
type RelatedObject struct {
	// +optional
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// +optional
	Name string `json:"name,omitempty"`
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// Reason: found as specified, not found, found but not as specified,
	// found but forbidden, created, updated, deleted.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Diff names the differing fields with the wanted and the found value
	// (Secrets' values are redacted).
	// +optional
	Diff string `json:"diff,omitempty"`
	// CreatedByPolicy marks an object the policy created (for pruning).
	// +optional
	CreatedByPolicy bool `json:"createdByPolicy,omitempty"`
}

// ComplianceEvent is one change of a verdict.
type ComplianceEvent struct {
	Time      metav1.Time     `json:"time"`
	Compliant ComplianceState `json:"compliant"`
	// +optional
	Message string `json:"message,omitempty"`
}

// PolicyList is a list of Policies.
//
// +kubebuilder:object:root=true
type PolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Policy `json:"items"`
}

// PlacementBinding binds policies and policy sets to the clusters a
// Placement of the same namespace decides.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=fleetpulse
// +kubebuilder:printcolumn:name="Placement",type=string,JSONPath=`.placementRef.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PlacementBinding struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// PlacementRef names the Placement.
	PlacementRef BindingPlacementRef `json:"placementRef"`
	// Subjects are the policies and policy sets bound.
	// +kubebuilder:validation:MinItems=1
	Subjects []PolicySubject `json:"subjects"`
	// BindingOverrides may raise the bound policies to enforce on these
	// clusters; a binding never lowers a policy to inform.
	// +optional
	BindingOverrides BindingOverrides `json:"bindingOverrides,omitempty"`
}

// BindingPlacementRef names a Placement in the binding's namespace.
type BindingPlacementRef struct {
	// +optional
	// +kubebuilder:default=Placement
	// +kubebuilder:validation:Enum=Placement
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}

// PolicySubject names a Policy or a PolicySet in the binding's namespace.
type PolicySubject struct {
	// +kubebuilder:validation:Enum=Policy;PolicySet
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// BindingOverrides change bound policies on the bound clusters.
type BindingOverrides struct {
	// RemediationAction "enforce" raises inform policies to enforce.
	// +optional
	// +kubebuilder:validation:Enum=enforce;Enforce
	RemediationAction RemediationAction `json:"remediationAction,omitempty"`
}

// PlacementBindingList is a list of PlacementBindings.
//
// +kubebuilder:object:root=true
type PlacementBindingList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PlacementBinding `json:"items"`
}

// PolicySet groups policies of its namespace, to bind them together and to
// see their compliance as one.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Compliance",type=string,JSONPath=`.status.compliant`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PolicySet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PolicySetSpec   `json:"spec,omitempty"`
	Status PolicySetStatus `json:"status,omitempty"`
}

// PolicySetSpec lists the policies of the set.
type PolicySetSpec struct {
	// +optional
	Description string `json:"description,omitempty"`
	// Policies are names of Policies in the set's namespace.
	Policies []string `json:"policies"`
}

// PolicySetStatus aggregates the set's policies.
type PolicySetStatus struct {
	// Compliant: NonCompliant if any policy is, else Pending if any is or a
	// named policy is missing, else Compliant.
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// Policies holds each policy's verdict.
	// +optional
	Policies []PolicySetMember `json:"policies,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// PolicySetMember is one policy's verdict within a set.
type PolicySetMember struct {
	Name string `json:"name"`
	// +optional
	Compliant ComplianceState `json:"compliant,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// PolicySetList is a list of PolicySets.
//
// +kubebuilder:object:root=true
type PolicySetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicySet `json:"items"`
}

// Labels and annotations of replicated policies and of policy-related
// objects.
const (
	// LabelRootPolicy on a replica names its root: "<namespace>.<name>".
	LabelRootPolicy = "policy.fleetpulse.io/root-policy"
	// LabelPolicyCluster on a replica names its cluster.
	LabelPolicyCluster = "policy.fleetpulse.io/cluster"
	// FinalizerPolicyPrune holds a replica whose policy prunes objects
	// (pruneObjectBehavior other than None) until the cluster's agent has
	// pruned them.
	FinalizerPolicyPrune = "policy.fleetpulse.io/prune"
	// AnnotationStandards, AnnotationCategories and AnnotationControls
	// classify a policy for audits, as Open Cluster Management does.
	AnnotationStandards  = "policy.open-cluster-management.io/standards"
	AnnotationCategories = "policy.open-cluster-management.io/categories"
	AnnotationControls   = "policy.open-cluster-management.io/controls"
)
