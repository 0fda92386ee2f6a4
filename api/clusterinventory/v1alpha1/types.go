package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is multicluster.x-k8s.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "multicluster.x-k8s.io", Version: "v1alpha1"}

var (
	schemeBuilder = runtime.NewSchemeBuilder(func(s *runtime.Scheme) error {
		s.AddKnownTypes(GroupVersion, &ClusterProfile{}, &ClusterProfileList{})
		metav1.AddToGroupVersion(s, GroupVersion)
		return nil
	})
	// AddToScheme registers the group's types with a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

// Standard labels and condition types of the Cluster Inventory API.
const (
	// LabelClusterManager names the tool that manages the profile.
	LabelClusterManager = "x-k8s.io/cluster-manager"
	// LabelClusterSet names the ClusterSet the cluster belongs to.
	LabelClusterSet = "multicluster.x-k8s.io/clusterset"
	// ConditionControlPlaneHealthy reports the cluster's control plane health.
	ConditionControlPlaneHealthy = "ControlPlaneHealthy"
	// ConditionJoined reports that the cluster joined its manager's fleet.
	ConditionJoined = "Joined"
)

// ClusterProfile represents a single cluster in a multi-cluster deployment.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Namespaced
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Manager",type=string,JSONPath=`.spec.clusterManager.name`
// +kubebuilder:printcolumn:name="Healthy",type=string,JSONPath=`.status.conditions[?(@.type=="ControlPlaneHealthy")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version.kubernetes`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ClusterProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ClusterProfileSpec `json:"spec"`
	// +optional
	Status ClusterProfileStatus `json:"status,omitempty"`
}

// ClusterProfileSpec names the cluster and its manager.
type ClusterProfileSpec struct {
	// DisplayName is a human-readable name of the cluster.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="DisplayName is immutable"
	DisplayName string `json:"displayName"`
	// ClusterManager is the tool that manages the cluster.
	ClusterManager ClusterManager `json:"clusterManager"`
}

// ClusterManager names the tool managing a cluster.
type ClusterManager struct {
	// Name of the cluster manager, e.g. fleetpulse.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="ClusterManager is immutable"
	Name string `json:"name"`
}

// ClusterProfileStatus is what the manager observes about the cluster.
type ClusterProfileStatus struct {
	// Conditions, among them ControlPlaneHealthy and Joined.
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Version of the cluster's software.
	// +optional
	Version ClusterVersion `json:"version,omitempty"`
	// Properties are named facts about the cluster.
	// +optional
	// +listType=map
	// +listMapKey=name
	Properties []Property `json:"properties,omitempty"`
}

// ClusterVersion holds the Kubernetes version.
type ClusterVersion struct {
	// Kubernetes is the kube-apiserver version.
	// +optional
	Kubernetes string `json:"kubernetes,omitempty"`
}

// Property is one named fact about a cluster.
type Property struct {
	// Name of the property, a qualified name.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Value of the property.
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
	// LastObservedTime is when the value was last observed.
	// +optional
	LastObservedTime metav1.Time `json:"lastObservedTime,omitempty"`
}

// ClusterProfileList is a list of ClusterProfiles.
//
// +kubebuilder:object:root=true
type ClusterProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterProfile `json:"items"`
}
