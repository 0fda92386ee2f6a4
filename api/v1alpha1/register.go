package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is fleetpulse.io/v1alpha1.
var GroupVersion = schema.GroupVersion{Group: "fleetpulse.io", Version: "v1alpha1"}

var (
	schemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme registers the group's types with a scheme.
	AddToScheme = schemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ManagedCluster{}, &ManagedClusterList{},
		&ClusterSet{}, &ClusterSetList{},
		&ManifestWork{}, &ManifestWorkList{},
		&ManifestWorkSet{}, &ManifestWorkSetList{},
		&ManifestWorkSetRevision{}, &ManifestWorkSetRevisionList{},
		&RolloutApproval{}, &RolloutApprovalList{},
		&Placement{}, &PlacementList{},
		&PlacementDecision{}, &PlacementDecisionList{},
		&AlertTaint{}, &AlertTaintList{},
		&Policy{}, &PolicyList{},
		&PlacementBinding{}, &PlacementBindingList{},
		&PolicySet{}, &PolicySetList{},
		&AlertRemediation{}, &AlertRemediationList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
