package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/testbed"
)

// dashboardPolicies gives the Policy compliance dashboard a fleet to show:
// two inform policies on both clusters, each asking for a ConfigMap in
// default. "baseline" (high, NIST SP 800-53 and CIS) complies on the first
// cluster, which has its ConfigMap, and not on the second; "owner"
// (medium, CIS) complies nowhere until its ConfigMap is created on the
// first cluster, which is a remediation the agent observes.
func dashboardPolicies(t *testing.T, kube client.Client, clusters []*testbed.Cluster, names []string) {
	t.Helper()
	ctx := context.Background()
	configMap := func(i int, name string) {
		t.Helper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}, Data: map[string]string{"team": "platform"}}
		if _, err := kubernetes.NewForConfigOrDie(clusters[i].RESTConfig).CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	configMap(0, "baseline")
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "policies"}},
		&fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: "dash"}, Spec: fleetv1.ClusterSetSpec{ClusterSelector: &metav1.LabelSelector{}}},
		&fleetv1.Placement{ObjectMeta: metav1.ObjectMeta{Namespace: "policies", Name: "all"}, Spec: fleetv1.PlacementSpec{ClusterSets: []string{"dash"}}},
		dashboardPolicy("baseline", fleetv1.SeverityHigh, "NIST SP 800-53, CIS"),
		dashboardPolicy("owner", fleetv1.SeverityMedium, "CIS"),
		&fleetv1.PlacementBinding{ObjectMeta: metav1.ObjectMeta{Namespace: "policies", Name: "all"},
			PlacementRef: fleetv1.BindingPlacementRef{Name: "all"},
			Subjects:     []fleetv1.PolicySubject{{Kind: "Policy", Name: "baseline"}, {Kind: "Policy", Name: "owner"}}},
	}
	for _, o := range objs {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatalf("create %T %s: %v", o, o.GetName(), err)
		}
	}
	want := func(policy string, states ...fleetv1.ComplianceState) {
		t.Helper()
		testutil.Eventually(t, 2*time.Minute, func() error {
			var p fleetv1.Policy
			if err := kube.Get(ctx, client.ObjectKey{Namespace: "policies", Name: policy}, &p); err != nil {
				return err
			}
			got := map[string]fleetv1.ComplianceState{}
			for _, c := range p.Status.Clusters {
				got[c.Cluster] = c.Compliant
			}
			for i, n := range names {
				if got[n] != states[i] {
					return fmt.Errorf("policy %s: clusters' verdicts %v, want %s on %s", policy, got, states[i], n)
				}
			}
			return nil
		}, "the agents' verdicts on policy %s", policy)
	}
	want("baseline", fleetv1.Compliant, fleetv1.NonCompliant)
	want("owner", fleetv1.NonCompliant, fleetv1.NonCompliant)
	configMap(0, "owner")
	want("owner", fleetv1.Compliant, fleetv1.NonCompliant)
}

func dashboardPolicy(name string, severity fleetv1.Severity, standards string) *fleetv1.Policy {
	return &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "policies", Name: name, Annotations: map[string]string{fleetv1.AnnotationStandards: standards}},
		Spec: fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationInform, Severity: severity,
			ObjectTemplates: []fleetv1.ObjectTemplate{{ComplianceType: fleetv1.MustHave, ObjectDefinition: runtime.RawExtension{Raw: fmt.Appendf(nil,
				`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":%q,"namespace":"default"},"data":{"team":"platform"}}`, name)}}}},
	}
}
