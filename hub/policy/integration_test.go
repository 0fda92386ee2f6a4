package policy_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/placement"
	"github.com/fleetpulse/fleetpulse/hub/policy"
	"github.com/fleetpulse/fleetpulse/internal/testutil"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

const within = 10 * time.Second

// fleet starts the placement and policy controllers on the package's
// control plane and registers the clusters, labelled env=prod or as given.
func fleet(t *testing.T, ns string, clusters map[string]string) client.Client {
	t.Helper()
	cp := controlplane.Start(t)
	ctx := context.Background()
	logger := testutil.Logger(t, slog.LevelInfo)
	cp.StartManager(t, func(mgr ctrl.Manager) error {
		cfg := placement.DefaultConfig()
		cfg.ScoreInterval = time.Second
		if err := placement.SetupWithConfig(mgr, cfg, nil, logger.With("component", "placement")); err != nil {
			return err
		}
		return policy.Setup(mgr, logger.With("component", "policy"))
	})
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.ClusterSet{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	for c, env := range clusters {
		require.NoError(t, kube.Create(ctx, &fleetv1.ManagedCluster{
			ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelClusterSet: ns, "env": env}},
			Spec:       fleetv1.ManagedClusterSpec{Accepted: true},
		}))
		// Registration makes an accepted cluster's namespace; it does not run here.
		require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: c, Labels: map[string]string{fleetv1.LabelCluster: c}}}))
	}
	require.NoError(t, kube.Create(ctx, &fleetv1.Placement{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "prod"},
		Spec: fleetv1.PlacementSpec{ClusterSets: []string{ns}, Predicates: []fleetv1.ClusterPredicate{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		}}},
	}))
	return kube
}

func networkPolicyTemplate() fleetv1.ObjectTemplate {
	return fleetv1.ObjectTemplate{ComplianceType: fleetv1.MustHave, ObjectDefinition: runtime.RawExtension{Raw: []byte(
		`{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"deny-all","namespace":"default"},"spec":{"podSelector":{}}}`)}}
}

// replicas reads a root policy's replicas by cluster.
func replicas(kube client.Client, root string) (map[string]*fleetv1.Policy, error) {
	var list fleetv1.PolicyList
	if err := kube.List(context.Background(), &list, client.MatchingLabels{fleetv1.LabelRootPolicy: root}); err != nil {
		return nil, err
	}
	out := map[string]*fleetv1.Policy{}
	for i := range list.Items {
		out[list.Items[i].Namespace] = &list.Items[i]
	}
	return out, nil
}

// replicasAre checks which clusters hold a live replica, and its remediation.
func replicasAre(kube client.Client, root string, want map[string]fleetv1.RemediationAction) error {
	have, err := replicas(kube, root)
	if err != nil {
		return err
	}
	got := map[string]fleetv1.RemediationAction{}
	for c, p := range have {
		if p.DeletionTimestamp == nil {
			got[c] = p.Spec.RemediationAction
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("replicas %v, want %v", got, want)
	}
	return nil
}

// report writes a replica's status as the cluster's agent does.
func report(t *testing.T, kube client.Client, cluster, name string, verdict fleetv1.ComplianceState, msg string) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		p := &fleetv1.Policy{}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: cluster, Name: name}, p); err != nil {
			return err
		}
		p.Status.Compliant, p.Status.ObservedGeneration = verdict, p.Generation
		p.Status.History = append([]fleetv1.ComplianceEvent{{Time: metav1.Now(), Compliant: verdict, Message: msg}}, p.Status.History...)
		return kube.Status().Update(context.Background(), p)
	})
}

func rootStatus(kube client.Client, ns, name string, check func(*fleetv1.Policy) error) func() error {
	return func() error {
		p := &fleetv1.Policy{}
		if err := kube.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p); err != nil {
			return err
		}
		return check(p)
	}
}

func summaryIs(verdict fleetv1.ComplianceState, clusters, compliant, noncompliant, pending int32) func(*fleetv1.Policy) error {
	return func(p *fleetv1.Policy) error {
		want := fleetv1.ComplianceSummary{Clusters: clusters, Compliant: compliant, NonCompliant: noncompliant, Pending: pending}
		if p.Status.Compliant != verdict || p.Status.Summary == nil || *p.Status.Summary != want {
			return fmt.Errorf("status %s %+v, want %s %+v (clusters %+v)", p.Status.Compliant, p.Status.Summary, verdict, want, p.Status.Clusters)
		}
		return nil
	}
}

// TestPolicyFollowsItsBindings propagates a policy to the clusters its
// binding's placement decides, sums up what their agents report, raises it
// to enforce through the binding, follows the decision when it moves (the
// cluster that leaves keeps its replica until its agent has pruned), and
// removes every replica when the policy is disabled or deleted.
func TestPolicyFollowsItsBindings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kube := fleet(t, "sec", map[string]string{"sec-1": "prod", "sec-2": "prod", "sec-3": "dev"})
	root := &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sec", Name: "netpol", Annotations: map[string]string{fleetv1.AnnotationStandards: "NIST SP 800-53"}},
		Spec: fleetv1.PolicySpec{RemediationAction: fleetv1.RemediationInform, Severity: fleetv1.SeverityHigh,
			PruneObjectBehavior: fleetv1.PruneDeleteIfCreated, ObjectTemplates: []fleetv1.ObjectTemplate{networkPolicyTemplate()}},
	}
	require.NoError(t, kube.Create(ctx, root))
	binding := &fleetv1.PlacementBinding{
		ObjectMeta:   metav1.ObjectMeta{Namespace: "sec", Name: "netpol"},
		PlacementRef: fleetv1.BindingPlacementRef{Name: "prod"},
		Subjects:     []fleetv1.PolicySubject{{Kind: "Policy", Name: "netpol"}},
	}
	require.NoError(t, kube.Create(ctx, binding))

	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "sec.netpol", map[string]fleetv1.RemediationAction{"sec-1": "inform", "sec-2": "inform"})
	})
	have, err := replicas(kube, "sec.netpol")
	require.NoError(t, err)
	r := have["sec-1"]
	require.Equal(t, "sec.netpol", r.Name)
	require.Equal(t, "sec-1", r.Labels[fleetv1.LabelPolicyCluster])
	require.Equal(t, "NIST SP 800-53", r.Annotations[fleetv1.AnnotationStandards])
	require.Contains(t, r.Finalizers, fleetv1.FinalizerPolicyPrune, "a pruning policy's replica waits for its agent")
	testutil.Eventually(t, within, rootStatus(kube, "sec", "netpol", summaryIs(fleetv1.Pending, 2, 0, 0, 2)))

	// The agents report: one compliant, one not.
	report(t, kube, "sec-1", "sec.netpol", fleetv1.Compliant, "networkpolicies [deny-all] found as specified in namespace default")
	report(t, kube, "sec-2", "sec.netpol", fleetv1.NonCompliant, "networkpolicies [deny-all] not found in namespace default")
	testutil.Eventually(t, within, rootStatus(kube, "sec", "netpol", func(p *fleetv1.Policy) error {
		if err := summaryIs(fleetv1.NonCompliant, 2, 1, 1, 0)(p); err != nil {
			return err
		}
		i := slices.IndexFunc(p.Status.Clusters, func(c fleetv1.ClusterCompliance) bool { return c.Cluster == "sec-2" })
		if i < 0 || !strings.Contains(p.Status.Clusters[i].Message, "not found") {
			return fmt.Errorf("sec-2's entry %+v does not carry its agent's message", p.Status.Clusters)
		}
		return nil
	}))

	// The binding raises the policy to enforce on its clusters.
	testutil.Eventually(t, within, func() error {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(binding), binding); err != nil {
			return err
		}
		binding.BindingOverrides.RemediationAction = fleetv1.RemediationEnforce
		return kube.Update(ctx, binding)
	})
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "sec.netpol", map[string]fleetv1.RemediationAction{"sec-1": "enforce", "sec-2": "enforce"})
	})

	// sec-2 leaves the placement and sec-3 joins: sec-3 gets a replica at
	// once; sec-2's is deleted but held until its agent has pruned.
	setEnv(t, kube, "sec-2", "dev")
	setEnv(t, kube, "sec-3", "prod")
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "sec.netpol", map[string]fleetv1.RemediationAction{"sec-1": "enforce", "sec-3": "enforce"})
	})
	held := &fleetv1.Policy{}
	require.NoError(t, kube.Get(ctx, client.ObjectKey{Namespace: "sec-2", Name: "sec.netpol"}, held))
	require.NotNil(t, held.DeletionTimestamp, "sec-2's replica is being deleted")
	held.Finalizers = nil // the agent has pruned
	require.NoError(t, kube.Update(ctx, held))
	testutil.Eventually(t, within, func() error {
		err := kube.Get(ctx, client.ObjectKeyFromObject(held), &fleetv1.Policy{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("sec-2's replica still there (%v)", err)
		}
		return nil
	})
	// Raised to enforce, sec-1's replica has a new generation: its verdict
	// is pending until its agent evaluates it again.
	testutil.Eventually(t, within, rootStatus(kube, "sec", "netpol", summaryIs(fleetv1.Pending, 2, 0, 0, 2)))
	report(t, kube, "sec-1", "sec.netpol", fleetv1.Compliant, "networkpolicies [deny-all] found as specified in namespace default")
	testutil.Eventually(t, within, rootStatus(kube, "sec", "netpol", summaryIs(fleetv1.Pending, 2, 1, 0, 1)))

	// Disabled: no replica anywhere (the agents release them).
	testutil.Eventually(t, within, func() error {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(root), root); err != nil {
			return err
		}
		root.Spec.Disabled = true
		return kube.Update(ctx, root)
	})
	releaseAll(t, kube, "sec.netpol")
	testutil.Eventually(t, within, func() error { return replicasAre(kube, "sec.netpol", map[string]fleetv1.RemediationAction{}) })
	testutil.Eventually(t, within, rootStatus(kube, "sec", "netpol", func(p *fleetv1.Policy) error {
		c := meta.FindStatusCondition(p.Status.Conditions, policy.ConditionPropagated)
		if c == nil || c.Reason != "Disabled" {
			return fmt.Errorf("condition %+v, want Propagated reason Disabled", c)
		}
		return nil
	}))

	// Enabled again, then deleted: the replicas go with the root.
	testutil.Eventually(t, within, func() error {
		if err := kube.Get(ctx, client.ObjectKeyFromObject(root), root); err != nil {
			return err
		}
		root.Spec.Disabled = false
		return kube.Update(ctx, root)
	})
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "sec.netpol", map[string]fleetv1.RemediationAction{"sec-1": "enforce", "sec-3": "enforce"})
	})
	require.NoError(t, kube.Delete(ctx, root))
	releaseAll(t, kube, "sec.netpol")
	testutil.Eventually(t, within, func() error {
		have, err := replicas(kube, "sec.netpol")
		if err != nil || len(have) > 0 {
			return fmt.Errorf("replicas left: %v (%v)", have, err)
		}
		if err := kube.Get(ctx, client.ObjectKeyFromObject(root), &fleetv1.Policy{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("root policy still there (%v)", err)
		}
		return nil
	})
}

// releaseAll removes the prune finalizer of every replica being deleted, as
// their agents do once they have pruned.
func releaseAll(t *testing.T, kube client.Client, root string) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		have, err := replicas(kube, root)
		if err != nil {
			return err
		}
		for _, p := range have {
			if p.DeletionTimestamp == nil {
				return fmt.Errorf("replica %s/%s not yet deleted", p.Namespace, p.Name)
			}
			p.Finalizers = nil
			if err := kube.Update(context.Background(), p); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	})
}

func setEnv(t *testing.T, kube client.Client, cluster, env string) {
	t.Helper()
	testutil.Eventually(t, within, func() error {
		mc := &fleetv1.ManagedCluster{}
		if err := kube.Get(context.Background(), client.ObjectKey{Name: cluster}, mc); err != nil {
			return err
		}
		mc.Labels["env"] = env
		return kube.Update(context.Background(), mc)
	})
}

// TestPolicySetsAndAlertRemediation binds two policies through a set, sums
// the set's compliance, and raises one policy to enforce on the one cluster
// where an AlertRemediation enforces it; a dry run changes nothing. A
// policy of a name already taken on a cluster is reported, not overwritten.
func TestPolicySetsAndAlertRemediation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kube := fleet(t, "base", map[string]string{"base-1": "prod", "base-2": "prod"})
	for _, name := range []string{"quota", "rbac"} {
		require.NoError(t, kube.Create(ctx, &fleetv1.Policy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "base", Name: name},
			Spec:       fleetv1.PolicySpec{ObjectTemplates: []fleetv1.ObjectTemplate{networkPolicyTemplate()}},
		}))
	}
	// Someone else's policy already holds rbac's replica name on base-2:
	// base-2 counts as pending for rbac, which cannot be verified there.
	require.NoError(t, kube.Create(ctx, &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "base-2", Name: "base.rbac"},
		Spec:       fleetv1.PolicySpec{ObjectTemplates: []fleetv1.ObjectTemplate{networkPolicyTemplate()}},
	}))
	require.NoError(t, kube.Create(ctx, &fleetv1.PolicySet{
		ObjectMeta: metav1.ObjectMeta{Namespace: "base", Name: "baseline"},
		Spec:       fleetv1.PolicySetSpec{Policies: []string{"quota", "rbac", "missing"}},
	}))
	require.NoError(t, kube.Create(ctx, &fleetv1.PlacementBinding{
		ObjectMeta:   metav1.ObjectMeta{Namespace: "base", Name: "baseline"},
		PlacementRef: fleetv1.BindingPlacementRef{Name: "prod"},
		Subjects:     []fleetv1.PolicySubject{{Kind: "PolicySet", Name: "baseline"}},
	}))
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "base.quota", map[string]fleetv1.RemediationAction{"base-1": "inform", "base-2": "inform"})
	})
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "base.rbac", map[string]fleetv1.RemediationAction{"base-1": "inform"})
	})
	testutil.Eventually(t, within, rootStatus(kube, "base", "rbac", func(p *fleetv1.Policy) error {
		c := meta.FindStatusCondition(p.Status.Conditions, policy.ConditionPropagated)
		if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "cluster base-2: a policy named base.rbac exists there and is not this policy's replica") {
			return fmt.Errorf("condition %+v, want the name conflict on base-2 reported", c)
		}
		return nil
	}))

	report(t, kube, "base-1", "base.quota", fleetv1.Compliant, "ok")
	report(t, kube, "base-2", "base.quota", fleetv1.Compliant, "ok")
	report(t, kube, "base-1", "base.rbac", fleetv1.NonCompliant, "missing")
	testutil.Eventually(t, within, func() error {
		s := &fleetv1.PolicySet{}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: "base", Name: "baseline"}, s); err != nil {
			return err
		}
		got := fmt.Sprintf("%s %v", s.Status.Compliant, s.Status.Policies)
		want := "NonCompliant [{quota Compliant 2 of 2 clusters compliant} {rbac NonCompliant 0 of 2 clusters compliant} {missing Pending policy not found}]"
		if got != want {
			return fmt.Errorf("set status %s, want %s", got, want)
		}
		return nil
	})

	// An alert remediation enforcing quota on base-2; its dry-run twin on
	// base-1 changes nothing.
	for _, r := range []struct {
		name, cluster string
		dry           bool
	}{{"quota-now", "base-2", false}, {"quota-dry", "base-1", true}} {
		rule := &fleetv1.AlertRemediation{
			ObjectMeta: metav1.ObjectMeta{Name: r.name},
			Spec:       fleetv1.AlertRemediationSpec{AlertName: "QuotaMissing", PolicyRef: fleetv1.PolicyRef{Namespace: "base", Name: "quota"}, DryRun: r.dry},
		}
		require.NoError(t, kube.Create(ctx, rule))
		state := fleetv1.RemediationStateEnforcing
		if r.dry {
			state = fleetv1.RemediationStateWouldEnforce
		}
		rule.Status = fleetv1.AlertRemediationStatus{EnforcingClusters: 1, Clusters: []fleetv1.AlertRemediationCluster{{Cluster: r.cluster, State: state, Since: metav1.Now()}}}
		require.NoError(t, kube.Status().Update(ctx, rule))
	}
	testutil.Eventually(t, within, func() error {
		return replicasAre(kube, "base.quota", map[string]fleetv1.RemediationAction{"base-1": "inform", "base-2": "enforce"})
	})
	testutil.Eventually(t, within, rootStatus(kube, "base", "quota", func(p *fleetv1.Policy) error {
		got := fmt.Sprint(p.Status.Clusters)
		if !strings.Contains(got, "{base-2 Pending enforce") {
			return fmt.Errorf("clusters %s: want base-2 enforcing (and pending a new verdict)", got)
		}
		return nil
	}))
}
