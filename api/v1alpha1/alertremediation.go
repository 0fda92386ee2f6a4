package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertRemediation turns firing alerts of the hub's own rules into enforcing
// a Policy on the clusters they fire for: the cluster's replica of the policy
// is raised to enforce, so the agent corrects what the policy names. Like
// AlertTaint it waits before acting, bounds how many clusters it acts on,
// can run dry, records every action as an Event and in status (alert, labels,
// value), and, if asked, lowers the replica back to inform once the alert has
// stayed resolved.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Alert",type=string,JSONPath=`.spec.alertName`
// +kubebuilder:printcolumn:name="Policy",type=string,JSONPath=`.spec.policyRef.name`
// +kubebuilder:printcolumn:name="Enforcing",type=integer,JSONPath=`.status.enforcingClusters`
// +kubebuilder:printcolumn:name="DryRun",type=boolean,JSONPath=`.spec.dryRun`
type AlertRemediation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AlertRemediationSpec   `json:"spec,omitempty"`
	Status AlertRemediationStatus `json:"status,omitempty"`
}

// AlertRemediationSpec maps an alert to a policy to enforce.
type AlertRemediationSpec struct {
	// AlertName is the alert's name (alertname label).
	AlertName string `json:"alertName"`
	// MatchLabels further select the alert's instances by label.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// PolicyRef names the root Policy to enforce on the cluster named by the
	// alert's cluster label; the policy must be bound to that cluster.
	PolicyRef PolicyRef `json:"policyRef"`
	// EnforceAfter is how long an alert must fire before enforcing.
	// +optional
	EnforceAfter metav1.Duration `json:"enforceAfter,omitempty"`
	// UndoAfter, when set, lowers the replica back to the policy's own
	// remediation once the alert has stayed resolved this long; unset keeps
	// enforcing.
	// +optional
	UndoAfter *metav1.Duration `json:"undoAfter,omitempty"`
	// MaxClusters bounds how many clusters this rule may enforce on at once;
	// 0 is no bound.
	// +optional
	MaxClusters int32 `json:"maxClusters,omitempty"`
	// DryRun records what would be done and does nothing.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// PolicyRef names a root Policy.
type PolicyRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// AlertRemediationStatus records what the rule did.
type AlertRemediationStatus struct {
	// EnforcingClusters counts clusters the rule enforces the policy on now.
	EnforcingClusters int32 `json:"enforcingClusters"`
	// Clusters lists the clusters the rule acts on or considers.
	// +optional
	Clusters []AlertRemediationCluster `json:"clusters,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AlertRemediationCluster is the rule's state for one cluster.
type AlertRemediationCluster struct {
	Cluster string `json:"cluster"`
	// State: Firing (waiting for EnforceAfter), Enforcing, Resolved (waiting
	// for UndoAfter), Held (MaxClusters kept it from acting, or the policy is
	// not bound to the cluster), WouldEnforce (dry run).
	State string `json:"state"`
	// Since is when the state began.
	Since metav1.Time `json:"since"`
	// AlertLabels and Value are the alert's when last seen firing.
	// +optional
	AlertLabels map[string]string `json:"alertLabels,omitempty"`
	// +optional
	Value string `json:"value,omitempty"`
	// +optional
	Message string `json:"message,omitempty"`
}

// AlertRemediationList is a list of AlertRemediations.
//
// +kubebuilder:object:root=true
type AlertRemediationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertRemediation `json:"items"`
}

// States of an AlertRemediationCluster.
const (
	RemediationStateFiring       = "Firing"
	RemediationStateEnforcing    = "Enforcing"
	RemediationStateResolved     = "Resolved"
	RemediationStateHeld         = "Held"
	RemediationStateWouldEnforce = "WouldEnforce"
)
