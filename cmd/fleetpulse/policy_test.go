package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/internal/testutil/controlplane"
)

func TestMain(m *testing.M) { controlplane.Main(m) }

// run runs the fleetpulse command line as a user does and returns stdout.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

// TestPolicyStatusAndReport reads policies from a real control plane: the
// status table has a line per policy and cluster, the filters narrow it,
// and the audit report crosses standards, categories and controls with the
// clusters' verdicts, in CSV and JSON.
func TestPolicyStatusAndReport(t *testing.T) {
	cp := controlplane.Start(t)
	ctx := context.Background()
	kube := cp.Client
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "audit"}}))
	tmpl := []fleetv1.ObjectTemplate{{ComplianceType: fleetv1.MustHave, ObjectDefinition: runtime.RawExtension{Raw: []byte(
		`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}`)}}}
	for _, p := range []struct {
		name, standards, controls string
		clusters                  []fleetv1.ClusterCompliance
	}{
		{"netpol", "NIST SP 800-53, PCI DSS", "SC-7", []fleetv1.ClusterCompliance{
			{Cluster: "east", Compliant: fleetv1.Compliant, RemediationAction: "enforce", Message: "ok"},
			{Cluster: "west", Compliant: fleetv1.NonCompliant, RemediationAction: "inform", Message: "networkpolicies [deny-all]\nnot found"},
		}},
		{"unbound", "", "", nil},
	} {
		pol := &fleetv1.Policy{
			ObjectMeta: metav1.ObjectMeta{Namespace: "audit", Name: p.name, Annotations: map[string]string{
				fleetv1.AnnotationStandards: p.standards, fleetv1.AnnotationControls: p.controls}},
			Spec: fleetv1.PolicySpec{ObjectTemplates: tmpl, Severity: fleetv1.SeverityHigh},
		}
		require.NoError(t, kube.Create(ctx, pol))
		pol.Status = fleetv1.PolicyStatus{Clusters: p.clusters}
		require.NoError(t, kube.Status().Update(ctx, pol))
	}
	// A replica is not listed: its root stands for it.
	require.NoError(t, kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "east"}}))
	require.NoError(t, kube.Create(ctx, &fleetv1.Policy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "east", Name: "audit.netpol", Labels: map[string]string{fleetv1.LabelRootPolicy: "audit.netpol"}},
		Spec:       fleetv1.PolicySpec{ObjectTemplates: tmpl},
	}))
	kc := "--control-plane.kubeconfig=" + cp.KubeconfigPath

	out, err := run(t, "policy", "status", kc)
	require.NoError(t, err)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	require.Regexp(t, `^NAMESPACE\s+POLICY\s+SEVERITY\s+CLUSTER\s+REMEDIATION\s+COMPLIANCE\s+MESSAGE$`, lines[0])
	require.Regexp(t, `^audit\s+netpol\s+high\s+east\s+enforce\s+Compliant\s+ok$`, lines[1])
	require.Regexp(t, `^audit\s+netpol\s+high\s+west\s+inform\s+NonCompliant\s+networkpolicies \[deny-all\] not found$`, lines[2])
	require.Regexp(t, `^audit\s+unbound\s+high\s+-\s+inform\s+-\s+bound to no cluster$`, lines[3])

	out, err = run(t, "policy", "status", kc, "--cluster=west", "--policy=audit/netpol")
	require.NoError(t, err)
	require.Len(t, strings.Split(strings.TrimSpace(out), "\n"), 2, out)
	require.Contains(t, out, "west")

	out, err = run(t, "policy", "report", kc)
	require.NoError(t, err)
	records, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, []string{"standard", "category", "control", "namespace", "policy", "severity", "cluster", "remediation", "compliance", "message"}, records[0])
	require.Equal(t, [][]string{
		{"NIST SP 800-53", "", "SC-7", "audit", "netpol", "high", "east", "enforce", "Compliant", "ok"},
		{"NIST SP 800-53", "", "SC-7", "audit", "netpol", "high", "west", "inform", "NonCompliant", "networkpolicies [deny-all] not found"},
		{"PCI DSS", "", "SC-7", "audit", "netpol", "high", "east", "enforce", "Compliant", "ok"},
		{"PCI DSS", "", "SC-7", "audit", "netpol", "high", "west", "inform", "NonCompliant", "networkpolicies [deny-all] not found"},
	}, records[1:])

	out, err = run(t, "policy", "report", kc, "--format=json", "--cluster=west")
	require.NoError(t, err)
	var rows []map[string]string
	require.NoError(t, json.Unmarshal([]byte(out), &rows), out)
	require.Len(t, rows, 2)
	require.Equal(t, "NonCompliant", rows[0]["compliance"])

	_, err = run(t, "policy", "report", kc, "--format=xml")
	require.ErrorContains(t, err, `--format "xml": want csv or json`)
	_, err = run(t, "policy", "status")
	if err == nil || !strings.Contains(err.Error(), "--control-plane.kubeconfig is required") {
		t.Errorf("without a kubeconfig: %v, want it named", err)
	}
}
