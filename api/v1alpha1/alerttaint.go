package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// AlertTaint turns firing alerts of the hub's own rules into a taint on the
// clusters they fire for, so that placements move work away, and removes it
// when the alert has stayed resolved. Every action is recorded as an Event
// and in status, naming the alert, its labels and value.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Alert",type=string,JSONPath=`.spec.alertName`
// +kubebuilder:printcolumn:name="Taint",type=string,JSONPath=`.spec.taint.key`
// +kubebuilder:printcolumn:name="Tainted",type=integer,JSONPath=`.status.taintedClusters`
// +kubebuilder:printcolumn:name="DryRun",type=boolean,JSONPath=`.spec.dryRun`
type AlertTaint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   AlertTaintSpec   `json:"spec,omitempty"`
	Status AlertTaintStatus `json:"status,omitempty"`
}

// AlertTaintSpec maps an alert to a taint.
type AlertTaintSpec struct {
	// AlertName is the alert's name (alertname label).
	AlertName string `json:"alertName"`
	// MatchLabels further select the alert's instances by label.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// Taint is added to the cluster named by the alert's cluster label.
	Taint Taint `json:"taint"`
	// TaintAfter is how long an alert must fire before the taint.
	// +optional
	TaintAfter metav1.Duration `json:"taintAfter,omitempty"`
	// UntaintAfter is how long an alert must stay resolved before the taint
	// goes.
	// +optional
	// +kubebuilder:default="1m"
	UntaintAfter metav1.Duration `json:"untaintAfter,omitempty"`
	// MaxTaintedClusters bounds how many clusters this rule may have tainted
	// at once; 0 is no bound.
	// +optional
	MaxTaintedClusters int32 `json:"maxTaintedClusters,omitempty"`
	// DryRun records what would be done and does nothing.
	// +optional
	DryRun bool `json:"dryRun,omitempty"`
}

// AlertTaintStatus records what the rule did.
type AlertTaintStatus struct {
	// TaintedClusters counts clusters the rule holds tainted now.
	TaintedClusters int32 `json:"taintedClusters"`
	// Clusters lists the clusters the rule acts on or considers.
	// +optional
	Clusters []AlertTaintCluster `json:"clusters,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// AlertTaintCluster is the rule's state for one cluster.
type AlertTaintCluster struct {
	Cluster string `json:"cluster"`
	// State: Firing (waiting for TaintAfter), Tainted, Resolved (waiting for
	// UntaintAfter), Held (the guard or the bound kept it from tainting),
	// WouldTaint (dry run).
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

// AlertTaintList is a list of AlertTaints.
//
// +kubebuilder:object:root=true
type AlertTaintList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []AlertTaint `json:"items"`
}
