package v1alpha1

import (
	"encoding/json"
	"fmt"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Placement picks managed clusters for work: from the ClusterSets it names,
// those its predicates select and whose taints it tolerates, ranked by its
// prioritizers (built-in and PromQL scores over the hub's telemetry), the
// best NumberOfClusters of them. The hub writes its choice into
// PlacementDecisions and moves it only when a better choice is clearly and
// durably better (hysteresis), at a bounded rate.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=plc,categories=fleetpulse
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Satisfied",type=string,JSONPath=`.status.conditions[?(@.type=="Satisfied")].status`
// +kubebuilder:printcolumn:name="Selected",type=integer,JSONPath=`.status.numberOfSelectedClusters`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Placement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PlacementSpec   `json:"spec,omitempty"`
	Status PlacementStatus `json:"status,omitempty"`
}

// PlacementSpec says which clusters qualify and how to rank them.
type PlacementSpec struct {
	// ClusterSets to choose from; empty means every cluster set.
	// +optional
	ClusterSets []string `json:"clusterSets,omitempty"`
	// NumberOfClusters to select; all qualifying clusters when unset.
	// +optional
	// +kubebuilder:validation:Minimum=0
	NumberOfClusters *int32 `json:"numberOfClusters,omitempty"`
	// Predicates: a cluster qualifies when any predicate selects it.
	// +optional
	Predicates []ClusterPredicate `json:"predicates,omitempty"`
	// SpreadPolicy spreads the selection over a label's or claim's values.
	// +optional
	SpreadPolicy SpreadPolicy `json:"spreadPolicy,omitempty"`
	// Tolerations let the placement select tainted clusters.
	// +optional
	Tolerations []Toleration `json:"tolerations,omitempty"`
	// PrioritizerPolicy ranks qualifying clusters.
	// +optional
	PrioritizerPolicy PrioritizerPolicy `json:"prioritizerPolicy,omitempty"`
	// DecisionStrategy groups decisions for progressive rollouts.
	// +optional
	DecisionStrategy DecisionStrategy `json:"decisionStrategy,omitempty"`
	// Rescheduling bounds how readily the placement moves. Absent, it takes
	// its fields' defaults (hysteresis 10, minInterval 1m).
	// +optional
	// +kubebuilder:default={}
	Rescheduling Rescheduling `json:"rescheduling,omitempty"`
}

// ClusterPredicate selects clusters by labels and claims.
type ClusterPredicate struct {
	// +optional
	LabelSelector *metav1.LabelSelector `json:"labelSelector,omitempty"`
	// ClaimSelector matches the clusters' status.clusterClaims.
	// +optional
	ClaimSelector []metav1.LabelSelectorRequirement `json:"claimSelector,omitempty"`
}

// SpreadPolicy spreads selected clusters over topology values.
type SpreadPolicy struct {
	// +optional
	SpreadConstraints []SpreadConstraint `json:"spreadConstraints,omitempty"`
}

// SpreadConstraint keeps the count per value of a label or claim within
// MaxSkew of each other.
type SpreadConstraint struct {
	TopologyKey string `json:"topologyKey"`
	// +kubebuilder:validation:Enum=Label;Claim
	TopologyKeyType string `json:"topologyKeyType"`
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	MaxSkew int32 `json:"maxSkew,omitempty"`
}

// TolerationOperator compares a toleration with a taint.
// +kubebuilder:validation:Enum=Exists;Equal
type TolerationOperator string

// Toleration lets a placement select a cluster with a matching taint.
type Toleration struct {
	// Key matches the taint's key; empty with Exists matches every taint.
	// +optional
	Key string `json:"key,omitempty"`
	// +kubebuilder:default=Equal
	Operator TolerationOperator `json:"operator,omitempty"`
	// +optional
	Value string `json:"value,omitempty"`
	// Effect matches the taint's effect; empty matches all.
	// +optional
	Effect TaintEffect `json:"effect,omitempty"`
	// TolerationSeconds bounds how long a NoSelect taint is tolerated,
	// counted from the taint's timeAdded.
	// +optional
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty"`
}

// PrioritizerPolicy ranks clusters by weighted scores in [-100, 100].
type PrioritizerPolicy struct {
	// Mode Additive adds the configurations to the defaults (Balance and
	// Steady, weight 1); Exact uses only the configurations.
	// +kubebuilder:validation:Enum=Additive;Exact
	// +kubebuilder:default=Additive
	Mode string `json:"mode,omitempty"`
	// +optional
	Configurations []PrioritizerConfig `json:"configurations,omitempty"`
}

// PrioritizerConfig is one weighted score.
type PrioritizerConfig struct {
	ScoreCoordinate ScoreCoordinate `json:"scoreCoordinate"`
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=-10
	// +kubebuilder:validation:Maximum=10
	Weight int32 `json:"weight,omitempty"`
}

// ScoreCoordinate names a score.
type ScoreCoordinate struct {
	// +kubebuilder:validation:Enum=BuiltIn;PromQL
	Type string `json:"type"`
	// BuiltIn: Balance (fewer placements' decisions rank higher), Steady
	// (the current decisions rank higher), ResourceAllocatableCPU,
	// ResourceAllocatableMemory (more allocatable ranks higher).
	// +optional
	BuiltIn string `json:"builtIn,omitempty"`
	// +optional
	PromQL *PromQLScore `json:"promQL,omitempty"`
}

// PromQLScore is a query over the hub's telemetry returning one value per
// cluster (a "cluster" label). Values are normalised to [-100, 100] over the
// qualifying clusters (the highest value scores 100 unless Ascending);
// clusters without a value, or with one older than Staleness, score 0.
type PromQLScore struct {
	Query string `json:"query"`
	// Ascending: lower values rank higher (e.g. CPU utilisation).
	// +optional
	Ascending bool `json:"ascending,omitempty"`
	// Staleness: samples older than this are ignored (the query's instant
	// selectors look back this far instead of the engine's lookback). A zero
	// value from a Go client is omitted, so the default applies.
	// +optional
	// +kubebuilder:default="5m"
	Staleness metav1.Duration `json:"staleness,omitzero"`
}

// DecisionStrategy groups selected clusters.
type DecisionStrategy struct {
	// ClustersPerDecisionGroup splits the decisions into groups of at most
	// this many, for rollouts per group.
	// +optional
	ClustersPerDecisionGroup int32 `json:"clustersPerDecisionGroup,omitempty"`
}

// Rescheduling bounds movement of a placement that already decided.
type Rescheduling struct {
	// Hysteresis is the score margin (out of 100 per weight) by which a
	// cluster must beat a selected one to replace it.
	// +optional
	// +kubebuilder:default=10
	Hysteresis int32 `json:"hysteresis,omitempty"`
	// MinInterval is the least time between two moves caused by scores;
	// moves away from clusters that no longer qualify are never delayed. A
	// zero value from a Go client is omitted, so the default applies.
	// +optional
	// +kubebuilder:default="1m"
	MinInterval metav1.Duration `json:"minInterval,omitzero"`
}

// PlacementStatus reports the decision.
type PlacementStatus struct {
	// +optional
	NumberOfSelectedClusters int32 `json:"numberOfSelectedClusters"`
	// +optional
	DecisionGroups []DecisionGroupStatus `json:"decisionGroups,omitempty"`
	// Conditions: Satisfied (as many clusters as asked for were selected).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// LastRescheduleTime is when scores last moved the decision.
	// +optional
	LastRescheduleTime *metav1.Time `json:"lastRescheduleTime,omitempty"`
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// DecisionGroupStatus names a group's PlacementDecisions.
type DecisionGroupStatus struct {
	DecisionGroupIndex int32    `json:"decisionGroupIndex"`
	Decisions          []string `json:"decisions"`
	ClustersCount      int32    `json:"clustersCount"`
}

// PlacementList is a list of Placements.
//
// +kubebuilder:object:root=true
type PlacementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Placement `json:"items"`
}

// PlacementDecision holds up to 100 of a Placement's selected clusters, in
// the shape Argo CD's cluster-decision-resource generator reads
// (status.decisions[].clusterName), labelled with the placement's name and
// decision group as SIG-Multicluster's PlacementDecision is.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=fleetpulse
// +kubebuilder:subresource:status
type PlacementDecision struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Status PlacementDecisionStatus `json:"status,omitempty"`
}

// PlacementDecisionStatus lists selected clusters.
type PlacementDecisionStatus struct {
	// +optional
	Decisions []ClusterDecision `json:"decisions,omitempty"`
}

// ClusterDecision is one selected cluster and why.
type ClusterDecision struct {
	ClusterName string `json:"clusterName"`
	// +optional
	Reason string `json:"reason,omitempty"`
	// Score is the cluster's current total score, refreshed when it
	// changes (kept while a PromQL score fails).
	// +optional
	Score DecisionScore `json:"score,omitempty"`
}

// DecisionScore is a score written as a decimal string ("87"): Argo CD's
// cluster-decision-resource generator copies every field of a decision
// into its template parameters as a string and fails on any other type.
// A number, as older hubs wrote it, is read as well.
//
// +kubebuilder:validation:Type=string
type DecisionScore int64

// MarshalJSON writes the score as a decimal string.
func (s DecisionScore) MarshalJSON() ([]byte, error) {
	return json.Marshal(strconv.FormatInt(int64(s), 10))
}

// UnmarshalJSON reads a decimal string or a number.
func (s *DecisionScore) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("score %s: want a decimal string or an integer", b)
		}
		*s = DecisionScore(n)
		return nil
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil {
		return fmt.Errorf("score %q: %w", str, err)
	}
	*s = DecisionScore(n)
	return nil
}

// Labels of PlacementDecisions.
const (
	LabelPlacement            = "cluster.fleetpulse.io/placement"
	LabelDecisionGroupIndex   = "cluster.fleetpulse.io/decision-group-index"
	LabelSIGMCPlacementKey    = "multicluster.x-k8s.io/placement-key"
	LabelSIGMCDecisionIndex   = "multicluster.x-k8s.io/decision-index"
	PlacementConditionSatisfy = "Satisfied"
)

// PlacementDecisionList is a list of PlacementDecisions.
//
// +kubebuilder:object:root=true
type PlacementDecisionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PlacementDecision `json:"items"`
}
