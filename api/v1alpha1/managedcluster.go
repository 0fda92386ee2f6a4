package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ManagedCluster is a cluster registered with the hub. Its agent creates it by
// registering with a bootstrap token; an administrator (or the token) accepts
// it; from then on the agent's heartbeats keep its Available condition and the
// hub fills its status from the cluster's telemetry.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,shortName=mcl;mcls,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Accepted",type=boolean,JSONPath=`.spec.accepted`
// +kubebuilder:printcolumn:name="Available",type=string,JSONPath=`.status.conditions[?(@.type=="Available")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.version.kubernetes`
// +kubebuilder:printcolumn:name="Nodes",type=integer,JSONPath=`.status.nodes.total`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ManagedCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ManagedClusterSpec   `json:"spec,omitempty"`
	Status ManagedClusterStatus `json:"status,omitempty"`
}

// ManagedClusterSpec is what the hub's administrators decide about a cluster.
type ManagedClusterSpec struct {
	// Accepted admits the cluster: only then is its certificate signed and its
	// telemetry and work accepted. Set by `fleetpulse hub accept`, a patch, or
	// a bootstrap token created with --auto-accept.
	// +optional
	Accepted bool `json:"accepted"`

	// Taints keep placements off the cluster unless they tolerate them. The
	// hub adds fleetpulse.io/unreachable and fleetpulse.io/unavailable itself
	// and removes them on recovery; other taints are left alone.
	// +optional
	// +listType=map
	// +listMapKey=key
	// +listMapKey=effect
	Taints []Taint `json:"taints,omitempty"`

	// HeartbeatPeriodSeconds is how often the agent heartbeats. The cluster
	// goes Unknown after a grace period (--registration.grace-periods, 3 by default)
	// of periods without one.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=3600
	HeartbeatPeriodSeconds int32 `json:"heartbeatPeriodSeconds,omitempty"`
}

// TaintEffect says what a taint does to placements that do not tolerate it.
// +kubebuilder:validation:Enum=NoSelect;PreferNoSelect;NoSelectIfNew
type TaintEffect string

const (
	// TaintNoSelect: not selected, and already-placed work moves away.
	TaintNoSelect TaintEffect = "NoSelect"
	// TaintPreferNoSelect: selected only when nothing else fits.
	TaintPreferNoSelect TaintEffect = "PreferNoSelect"
	// TaintNoSelectIfNew: work already there stays; no new placement.
	TaintNoSelectIfNew TaintEffect = "NoSelectIfNew"
)

// Taint marks a cluster as unfit for placements that do not tolerate it.
type Taint struct {
	// Key is the taint's name, a qualified name (prefix/name).
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`
	// +kubebuilder:validation:MaxLength=316
	Key string `json:"key"`
	// Value is optional data for tolerations to match.
	// +optional
	Value string `json:"value,omitempty"`
	// Effect is what the taint does.
	Effect TaintEffect `json:"effect"`
	// TimeAdded is when the taint was added; tolerationSeconds count from it.
	// +optional
	TimeAdded metav1.Time `json:"timeAdded,omitempty"`
}

// Taints the hub manages from heartbeats.
const (
	// TaintUnreachable: no heartbeat within the grace period.
	TaintUnreachable = "fleetpulse.io/unreachable"
	// TaintUnavailable: the agent heartbeats but reports its cluster's API
	// unreachable.
	TaintUnavailable = "fleetpulse.io/unavailable"
)

// ManagedClusterStatus is what the hub observes about a cluster.
type ManagedClusterStatus struct {
	// Conditions: Joined (the cluster is accepted and its agent holds a
	// certificate) and Available (heartbeats arrive and the agent reaches its
	// cluster's API: True, False with reason ClusterAPIUnreachable, or Unknown
	// with reason HeartbeatMissed).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Version is the cluster's Kubernetes version.
	// +optional
	Version ManagedClusterVersion `json:"version,omitempty"`

	// Platform is the nodes' os/architecture, e.g. linux/amd64.
	// +optional
	Platform string `json:"platform,omitempty"`

	// Nodes counts the cluster's nodes.
	// +optional
	Nodes NodeCounts `json:"nodes,omitempty"`

	// Capacity is the sum of the nodes' capacity (cpu, memory, pods).
	// +optional
	Capacity corev1.ResourceList `json:"capacity,omitempty"`

	// Allocatable is the sum of the nodes' allocatable resources.
	// +optional
	Allocatable corev1.ResourceList `json:"allocatable,omitempty"`

	// ClusterClaims are facts the agent reports about its cluster (id,
	// platform, region, …), usable by placements' claim selectors.
	// +optional
	// +listType=map
	// +listMapKey=name
	ClusterClaims []ClusterClaim `json:"clusterClaims,omitempty"`

	// AgentVersion is the version of the cluster's agent.
	// +optional
	AgentVersion string `json:"agentVersion,omitempty"`

	// LastHeartbeatTime is the last heartbeat the hub has recorded here. The
	// hub coalesces: it writes it when the cluster's state changes and at most
	// once per refresh interval otherwise, as it does the cluster's Lease in
	// its namespace.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`

	// ObservedGeneration is the spec generation the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ManagedClusterVersion holds versions of the cluster's software.
type ManagedClusterVersion struct {
	// Kubernetes is the apiserver's git version, e.g. v1.35.4.
	// +optional
	Kubernetes string `json:"kubernetes,omitempty"`
}

// NodeCounts counts nodes.
type NodeCounts struct {
	// Total is every node.
	Total int32 `json:"total"`
	// Ready is the nodes whose Ready condition is True.
	Ready int32 `json:"ready"`
}

// ClusterClaim is one fact about a cluster.
type ClusterClaim struct {
	// Name is the claim's name, e.g. id.k8s.io or platform.fleetpulse.io.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Value is the claim's value.
	// +kubebuilder:validation:MaxLength=1024
	Value string `json:"value"`
}

// Condition types and reasons of a ManagedCluster.
const (
	ConditionJoined    = "Joined"
	ConditionAvailable = "Available"

	ReasonAccepted              = "Accepted"
	ReasonPendingAcceptance     = "PendingAcceptance"
	ReasonHeartbeating          = "Heartbeating"
	ReasonHeartbeatMissed       = "HeartbeatMissed"
	ReasonClusterAPIUnreachable = "ClusterAPIUnreachable"
)

// Labels the hub sets on managed clusters and their objects.
const (
	// LabelClusterSet names the ClusterSet a cluster belongs to.
	LabelClusterSet = "cluster.fleetpulse.io/clusterset"
	// LabelCluster names the cluster an object in the hub belongs to.
	LabelCluster = "cluster.fleetpulse.io/name"
)

// ManagedClusterList is a list of ManagedClusters.
//
// +kubebuilder:object:root=true
type ManagedClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ManagedCluster `json:"items"`
}
