package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Show the fleet's policy compliance, for operators and auditors",
		Long: `Read the policies on the hub's control plane: 'status' prints each cluster's
verdict on each policy; 'report' lists compliance by standard, category and
control (the policy.open-cluster-management.io annotations) as CSV or JSON.`,
	}
	cmd.AddCommand(newPolicyStatusCommand(), newPolicyReportCommand())
	return cmd
}

// policyFilter selects root policies and clusters.
type policyFilter struct {
	cluster, policy string // policy: NAME or NAMESPACE/NAME
}

func (f policyFilter) keepPolicy(p *fleetv1.Policy) bool {
	if f.policy == "" {
		return true
	}
	if ns, name, ok := strings.Cut(f.policy, "/"); ok {
		return p.Namespace == ns && p.Name == name
	}
	return p.Name == f.policy
}

// rootPolicies lists the root policies (not the clusters' replicas) the
// filter keeps, ordered by namespace and name.
func rootPolicies(cmd *cobra.Command, cp *controlPlaneFlags, f policyFilter) ([]fleetv1.Policy, error) {
	c, err := cp.client()
	if err != nil {
		return nil, err
	}
	var list fleetv1.PolicyList
	if err := c.List(cmd.Context(), &list); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	var out []fleetv1.Policy
	for _, p := range list.Items {
		if _, replica := p.Labels[fleetv1.LabelRootPolicy]; !replica && f.keepPolicy(&p) {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b fleetv1.Policy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out, nil
}

func newPolicyStatusCommand() *cobra.Command {
	var (
		cp controlPlaneFlags
		f  policyFilter
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Print each cluster's verdict on each policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			policies, err := rootPolicies(cmd, &cp, f)
			if err != nil {
				return err
			}
			return writeStatus(cmd.OutOrStdout(), policies, f)
		},
	}
	cp.addKubeconfig(cmd)
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "only this cluster")
	cmd.Flags().StringVar(&f.policy, "policy", "", "only this policy (NAME or NAMESPACE/NAME)")
	return cmd
}

// writeStatus prints one line per (policy, cluster), and a policy bound to
// no cluster once.
func writeStatus(w io.Writer, policies []fleetv1.Policy, f policyFilter) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tPOLICY\tSEVERITY\tCLUSTER\tREMEDIATION\tCOMPLIANCE\tMESSAGE")
	for _, p := range policies {
		if len(p.Status.Clusters) == 0 && f.cluster == "" {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t%s\t-\tbound to no cluster\n", p.Namespace, p.Name, orDash(string(p.Spec.Severity)), orDash(string(p.Spec.RemediationAction)))
		}
		for _, c := range p.Status.Clusters {
			if f.cluster != "" && c.Cluster != f.cluster {
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, orDash(string(p.Spec.Severity)), c.Cluster,
				orDash(string(c.RemediationAction)), orDash(string(c.Compliant)), oneLine(c.Message))
		}
	}
	return tw.Flush()
}

func newPolicyReportCommand() *cobra.Command {
	var (
		cp     controlPlaneFlags
		f      policyFilter
		format string
	)
	cmd := &cobra.Command{
		Use:   "report",
		Short: "List compliance by standard, category and control, as CSV or JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "csv" && format != "json" {
				return fmt.Errorf("--format %q: want csv or json", format)
			}
			policies, err := rootPolicies(cmd, &cp, f)
			if err != nil {
				return err
			}
			rows := reportRows(policies, f)
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rows)
			}
			return writeCSV(cmd.OutOrStdout(), rows)
		},
	}
	cp.addKubeconfig(cmd)
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	cmd.Flags().StringVar(&f.cluster, "cluster", "", "only this cluster")
	cmd.Flags().StringVar(&f.policy, "policy", "", "only this policy (NAME or NAMESPACE/NAME)")
	return cmd
}

// reportRow is one cluster's verdict on one policy under one control.
type reportRow struct {
	Standard    string `json:"standard"`
	Category    string `json:"category"`
	Control     string `json:"control"`
	Namespace   string `json:"namespace"`
	Policy      string `json:"policy"`
	Severity    string `json:"severity"`
	Cluster     string `json:"cluster"`
	Remediation string `json:"remediation"`
	Compliance  string `json:"compliance"`
	Message     string `json:"message"`
}

// reportRows crosses each policy's standards, categories and controls with
// its clusters' verdicts; a policy without annotations is listed under "".
func reportRows(policies []fleetv1.Policy, f policyFilter) []reportRow {
	rows := []reportRow{}
	for _, p := range policies {
		for _, std := range splitList(p.Annotations[fleetv1.AnnotationStandards]) {
			for _, cat := range splitList(p.Annotations[fleetv1.AnnotationCategories]) {
				for _, ctl := range splitList(p.Annotations[fleetv1.AnnotationControls]) {
					for _, c := range p.Status.Clusters {
						if f.cluster != "" && c.Cluster != f.cluster {
							continue
						}
						rows = append(rows, reportRow{Standard: std, Category: cat, Control: ctl, Namespace: p.Namespace, Policy: p.Name,
							Severity: string(p.Spec.Severity), Cluster: c.Cluster, Remediation: string(c.RemediationAction),
							Compliance: string(c.Compliant), Message: oneLine(c.Message)})
					}
				}
			}
		}
	}
	slices.SortStableFunc(rows, func(a, b reportRow) int {
		return strings.Compare(a.Standard+"\x00"+a.Category+"\x00"+a.Control, b.Standard+"\x00"+b.Category+"\x00"+b.Control)
	})
	return rows
}

func writeCSV(w io.Writer, rows []reportRow) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"standard", "category", "control", "namespace", "policy", "severity", "cluster", "remediation", "compliance", "message"})
	for _, r := range rows {
		_ = cw.Write([]string{r.Standard, r.Category, r.Control, r.Namespace, r.Policy, r.Severity, r.Cluster, r.Remediation, r.Compliance, r.Message})
	}
	cw.Flush()
	return cw.Error()
}

// splitList splits a comma-separated annotation; empty gives one "".
func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
