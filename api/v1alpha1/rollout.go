package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// RolloutStrategy says how a new revision reaches a placement's clusters.
// The clusters are cut into stages, run one after the other: the mandatory
// decision groups first, one stage each, then the rest (All: one stage;
// Progressive: batches of maxConcurrency; ProgressivePerGroup: one stage per
// decision group). A stage succeeds when each of its clusters has succeeded
// (its work Applied and Available for the revision, for minSuccessTime, and
// every gate passed) or failed within the failure budget.
type RolloutStrategy struct {
	// +kubebuilder:validation:Enum=All;Progressive;ProgressivePerGroup
	// +kubebuilder:default=All
	// +optional
	Type string `json:"type,omitempty"`
	// MaxConcurrency is the size of a Progressive stage: a count, or a
	// percentage of the placement's clusters (rounded up). Default 1.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern="^((100|[0-9]{1,2})%|[0-9]+)$"
	// +optional
	MaxConcurrency *intstr.IntOrString `json:"maxConcurrency,omitempty"`
	// MaxFailures is how many clusters may fail before the rollout stops: a
	// count or a percentage (rounded down), of the placement's clusters
	// across all stages for Progressive and All, of each group for
	// ProgressivePerGroup. Mandatory decision groups tolerate none. Default 0.
	// +kubebuilder:validation:XIntOrString
	// +kubebuilder:validation:Pattern="^((100|[0-9]{1,2})%|[0-9]+)$"
	// +optional
	MaxFailures *intstr.IntOrString `json:"maxFailures,omitempty"`
	// MinSuccessTime is the soak: how long a cluster's work must have been
	// successful before its stage may succeed. Gates go on being measured
	// meanwhile.
	// +optional
	MinSuccessTime metav1.Duration `json:"minSuccessTime,omitzero"`
	// ProgressDeadline is how long a cluster may take, from the moment its
	// work got the revision, to succeed; past it the cluster has failed.
	// Unset: no deadline.
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
	// MandatoryDecisionGroups roll out first, one stage each, in the order
	// listed, and tolerate no failure.
	// +optional
	MandatoryDecisionGroups []MandatoryDecisionGroup `json:"mandatoryDecisionGroups,omitempty"`
	// Gates are measured on the hub's own telemetry at every stage of this
	// placement, for every cluster of the stage.
	// +optional
	// +listType=map
	// +listMapKey=name
	Gates []RolloutGate `json:"gates,omitempty"`
	// FailureStrategy says what a failure beyond the budget does: Pause (the
	// default) waits for a person to resume or roll back; Halt stops the
	// rollout for good (a new revision starts a new one); Rollback gives the
	// clusters that run the failed revision the stable revision again.
	// +kubebuilder:validation:Enum=Halt;Pause;Rollback
	// +optional
	FailureStrategy string `json:"failureStrategy,omitempty"`
	// RollbackScope says which clusters Rollback takes back: Stage (the
	// default: the failed stage's) or All (every cluster of the rollout
	// that runs the failed revision).
	// +kubebuilder:validation:Enum=Stage;All
	// +optional
	RollbackScope string `json:"rollbackScope,omitempty"`
	// ApprovalBeforeStages lists stages of this placement (numbered from 0,
	// mandatory groups first) that wait for a RolloutApproval before they
	// start.
	// +optional
	ApprovalBeforeStages []int32 `json:"approvalBeforeStages,omitempty"`
}

// MandatoryDecisionGroup names a decision group of the Placement by index.
type MandatoryDecisionGroup struct {
	GroupIndex int32 `json:"groupIndex"`
}

// RolloutGate is a PromQL check of a stage. Its query is a Go template
// (text/template) with these fields:
//
//	.Clusters          the stage's cluster names as a regular expression
//	                   alternation, for cluster=~"{{ .Clusters }}"
//	.ClusterNames      the same names as a list
//	.Revision          the revision rolling out (a number)
//	.PreviousRevision  the stable revision (0 when there is none)
//	.TemplateHash      the revision's template hash
//	.Stage             the stage's index in the rollout
//	.Namespace, .Name  the ManifestWorkSet
//
// A sample with a cluster label is that cluster's value; a sample without
// one is every measured cluster's value. Every interval a measurement
// classifies each measured cluster's value: Failed when failureCondition
// holds (or, without one, when successCondition does not), Successful when
// successCondition holds (or, without one, when failureCondition does not),
// otherwise Inconclusive; a cluster without a sample is decided by noData,
// and a query that fails is Inconclusive.
type RolloutGate struct {
	// Name identifies the gate in status, Events and metrics.
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	Name string `json:"name"`
	// Query is PromQL over the hub's store, as a template.
	Query string `json:"query"`
	// SuccessCondition and FailureCondition compare the value:
	// "value <op> <number>" with <op> one of < <= > >= == !=. At least one
	// is required.
	// +optional
	SuccessCondition string `json:"successCondition,omitempty"`
	// +optional
	FailureCondition string `json:"failureCondition,omitempty"`
	// Interval between measurements. Default 30s.
	// +optional
	Interval metav1.Duration `json:"interval,omitzero"`
	// InitialDelay after a cluster's work got the revision before its
	// first measurement, so that the new pods have reported. Default 0.
	// +optional
	InitialDelay metav1.Duration `json:"initialDelay,omitzero"`
	// Count is how many Successful measurements a cluster needs for the
	// gate to pass. Measurements go on, every interval, until the stage
	// ends, so a failure during the soak still counts. Default 1.
	// +kubebuilder:validation:Minimum=1
	// +optional
	Count int32 `json:"count,omitempty"`
	// FailureLimit is how many Failed measurements a cluster may have; one
	// more fails the cluster. Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	FailureLimit int32 `json:"failureLimit,omitempty"`
	// InconclusiveLimit is how many Inconclusive measurements a cluster may
	// have; one more pauses the rollout. Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	InconclusiveLimit int32 `json:"inconclusiveLimit,omitempty"`
	// NoData says what a cluster without a sample counts as: Pause (the
	// default: Inconclusive), Fail (Failed) or Pass (Successful).
	// +kubebuilder:validation:Enum=Pause;Fail;Pass
	// +optional
	NoData string `json:"noData,omitempty"`
}

// RolloutPhase is where a rollout stands.
type RolloutPhase string

const (
	// RolloutProgressing: a stage is running.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutWaitingApproval: the next stage waits for a RolloutApproval.
	RolloutWaitingApproval RolloutPhase = "WaitingApproval"
	// RolloutPaused: spec.paused, a failure with failureStrategy Pause, or
	// an inconclusive gate; `fleetpulse app resume` goes on.
	RolloutPaused RolloutPhase = "Paused"
	// RolloutSucceeded: every stage succeeded; the revision is stable.
	RolloutSucceeded RolloutPhase = "Succeeded"
	// RolloutHalted: a failure with failureStrategy Halt.
	RolloutHalted RolloutPhase = "Halted"
	// RolloutRolledBack: a failure with failureStrategy Rollback; clusters
	// run the stable revision again.
	RolloutRolledBack RolloutPhase = "RolledBack"
)

// RolloutStatus is the rollout of one revision. Its cluster list is the
// membership taken when the rollout started: clusters that a placement
// decides later join the last stage, clusters it drops leave, and neither
// restarts the rollout.
type RolloutStatus struct {
	Revision int64 `json:"revision"`
	// PreviousRevision is the stable revision when the rollout started.
	// +optional
	PreviousRevision int64        `json:"previousRevision,omitempty"`
	Phase            RolloutPhase `json:"phase"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// CurrentStage is the index of the stage running or next to run.
	CurrentStage int32 `json:"currentStage"`
	// +optional
	Stages []RolloutStageStatus `json:"stages,omitempty"`
	// +optional
	Clusters []ClusterRolloutStatus `json:"clusters,omitempty"`
	// Resumed is the last fleetpulse.io/resume annotation acted on.
	// +optional
	Resumed string `json:"resumed,omitempty"`
}

// StagePhase is where a stage stands.
type StagePhase string

const (
	StagePending         StagePhase = "Pending"
	StageWaitingApproval StagePhase = "WaitingApproval"
	StageProgressing     StagePhase = "Progressing"
	StageSucceeded       StagePhase = "Succeeded"
	StageFailed          StagePhase = "Failed"
)

// RolloutStageStatus is one stage of a rollout.
type RolloutStageStatus struct {
	// Name is <placement>/mandatory-<group>, <placement>/group-<group>,
	// <placement>/batch-<n> or <placement>/all.
	Name      string `json:"name"`
	Placement string `json:"placement"`
	// +optional
	Mandatory bool `json:"mandatory,omitempty"`
	// Clusters in the stage; MaxFailures of them may fail.
	Clusters    int32      `json:"clusters"`
	MaxFailures int32      `json:"maxFailures"`
	Phase       StagePhase `json:"phase"`
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// ApprovedBy names the approval the stage started on and who gave it.
	// +optional
	ApprovedBy string `json:"approvedBy,omitempty"`
	// +optional
	Gates []StageGateStatus `json:"gates,omitempty"`
}

// StageGateStatus is a gate's last measurement in a stage.
type StageGateStatus struct {
	Name string `json:"name"`
	// Query is the last query run, its template filled in.
	// +optional
	Query string `json:"query,omitempty"`
	// +optional
	LastMeasured *metav1.Time `json:"lastMeasured,omitempty"`
	// +optional
	Measurements int32 `json:"measurements,omitempty"`
	// Error is the last query's error, if it failed.
	// +optional
	Error string `json:"error,omitempty"`
}

// ClusterVerdict is where one cluster stands in a rollout.
type ClusterVerdict string

const (
	VerdictPending      ClusterVerdict = "Pending"
	VerdictProgressing  ClusterVerdict = "Progressing"
	VerdictVerifying    ClusterVerdict = "Verifying"
	VerdictSucceeded    ClusterVerdict = "Succeeded"
	VerdictFailed       ClusterVerdict = "Failed"
	VerdictInconclusive ClusterVerdict = "Inconclusive"
	VerdictRolledBack   ClusterVerdict = "RolledBack"
)

// ClusterRolloutStatus is one cluster of a rollout.
type ClusterRolloutStatus struct {
	Cluster string         `json:"cluster"`
	Stage   int32          `json:"stage"`
	Verdict ClusterVerdict `json:"verdict"`
	// UpdateTime is when its work got the revision.
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
	// SuccessTime is when its work was first seen successful: the soak
	// starts there.
	// +optional
	SuccessTime *metav1.Time `json:"successTime,omitempty"`
	// +optional
	Gates []ClusterGateStatus `json:"gates,omitempty"`
	// DecidedBy is the signal behind the verdict.
	// +optional
	DecidedBy *RolloutDecision `json:"decidedBy,omitempty"`
}

// ClusterGateStatus counts one gate's measurements of one cluster.
type ClusterGateStatus struct {
	Name string `json:"name"`
	// +optional
	Successful int32 `json:"successful,omitempty"`
	// +optional
	Failed int32 `json:"failed,omitempty"`
	// +optional
	Inconclusive int32 `json:"inconclusive,omitempty"`
	// Value is the last measured value ("" without data).
	// +optional
	Value string `json:"value,omitempty"`
}

// Decision signals.
const (
	SignalWork             = "Work"
	SignalProgressDeadline = "ProgressDeadline"
	SignalGate             = "Gate"
	SignalRollback         = "Rollback"
)

// RolloutDecision records what decided a verdict: the work's conditions,
// the progress deadline, or a gate with its query, value and threshold.
type RolloutDecision struct {
	Signal string `json:"signal"`
	// +optional
	Gate string `json:"gate,omitempty"`
	// +optional
	Query string `json:"query,omitempty"`
	// +optional
	Value string `json:"value,omitempty"`
	// +optional
	Threshold string `json:"threshold,omitempty"`
	// +optional
	Message string      `json:"message,omitempty"`
	Time    metav1.Time `json:"time"`
}

// AnnotationResume on a ManifestWorkSet asks the hub to go on with a
// paused rollout: a failed or inconclusive stage is measured again from
// scratch. Any new value (`fleetpulse app resume` writes the time) counts
// once.
const AnnotationResume = "fleetpulse.io/resume"

// RolloutApproval lets one stage of one revision's rollout start. It is
// created by a person (or a tool) and kept as the record of who approved
// what; the hub only reads it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=rapproval,categories=fleetpulse
// +kubebuilder:printcolumn:name="Set",type=string,JSONPath=`.spec.manifestWorkSet`
// +kubebuilder:printcolumn:name="Revision",type=integer,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Stage",type=integer,JSONPath=`.spec.stage`
// +kubebuilder:printcolumn:name="Approver",type=string,JSONPath=`.spec.approver`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RolloutApproval struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec RolloutApprovalSpec `json:"spec"`
}

// RolloutApprovalSpec names the stage approved; it cannot change.
//
// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="an approval is immutable"
type RolloutApprovalSpec struct {
	// ManifestWorkSet in this namespace.
	ManifestWorkSet string `json:"manifestWorkSet"`
	// Revision whose rollout is approved.
	// +kubebuilder:validation:Minimum=1
	Revision int64 `json:"revision"`
	// Stage index in the rollout's status.
	// +kubebuilder:validation:Minimum=0
	Stage int32 `json:"stage"`
	// Approver is who approves.
	Approver string `json:"approver"`
	// +optional
	Comment string `json:"comment,omitempty"`
}

// RolloutApprovalList is a list of RolloutApprovals.
//
// +kubebuilder:object:root=true
type RolloutApprovalList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutApproval `json:"items"`
}
