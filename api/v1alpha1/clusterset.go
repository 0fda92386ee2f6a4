package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClusterSet is a named group of managed clusters. Membership is by label:
// a cluster belongs to the set named by its cluster.fleetpulse.io/clusterset
// label (set from the bootstrap token's --cluster-set, or by hand), or, with
// a label selector, to every set whose selector matches it.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mclset,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.clusters`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ClusterSetSpec   `json:"spec,omitempty"`
	Status ClusterSetStatus `json:"status,omitempty"`
}

// ClusterSetSpec says which clusters belong to the set.
type ClusterSetSpec struct {
	// ClusterSelector picks the members. Without it, members are the clusters
	// labelled cluster.fleetpulse.io/clusterset=<this set's name>.
	// +optional
	ClusterSelector *metav1.LabelSelector `json:"clusterSelector,omitempty"`
}

// ClusterSetStatus counts the members.
type ClusterSetStatus struct {
	// Clusters is how many managed clusters belong to the set.
	// +optional
	Clusters int32 `json:"clusters"`
	// Conditions: Empty (True when no cluster belongs to the set).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ClusterSetList is a list of ClusterSets.
//
// +kubebuilder:object:root=true
type ClusterSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterSet `json:"items"`
}
