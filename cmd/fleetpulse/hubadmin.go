package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/registration"
)

// controlPlaneFlags are what the admin verbs need to reach the hub's
// control plane, as the hub itself does.
type controlPlaneFlags struct {
	kubeconfig, namespace string
}

func (c *controlPlaneFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.kubeconfig, "control-plane.kubeconfig", os.Getenv("FLEETPULSE_CONTROL_PLANE_KUBECONFIG"), "kubeconfig of the hub's control plane (default $FLEETPULSE_CONTROL_PLANE_KUBECONFIG)")
	cmd.Flags().StringVar(&c.namespace, "registration.namespace", registration.DefaultConfig().Namespace, "namespace of bootstrap tokens")
}

// addKubeconfig adds only the kubeconfig flag, for verbs that do not touch
// registration's namespace.
func (c *controlPlaneFlags) addKubeconfig(cmd *cobra.Command) {
	cmd.Flags().StringVar(&c.kubeconfig, "control-plane.kubeconfig", os.Getenv("FLEETPULSE_CONTROL_PLANE_KUBECONFIG"), "kubeconfig of the hub's control plane (default $FLEETPULSE_CONTROL_PLANE_KUBECONFIG)")
}

func (c *controlPlaneFlags) client() (client.Client, error) {
	if c.kubeconfig == "" {
		return nil, fmt.Errorf("--control-plane.kubeconfig is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", c.kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("control-plane kubeconfig: %w", err)
	}
	return client.New(cfg, client.Options{Scheme: controlplane.Scheme()})
}

func newHubInstallCommand() *cobra.Command {
	var cp controlPlaneFlags
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install the Fleetpulse API (CRDs) and namespace on the hub's control plane",
		Long: `Install the Fleetpulse API (ManagedCluster, ClusterSet, ClusterProfile CRDs)
and the registration namespace on the hub's control plane. The hub does the
same when it starts with --control-plane.kubeconfig; this verb is for
installing ahead of it. Idempotent.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cp.client()
			if err != nil {
				return err
			}
			if err := controlplane.Install(cmd.Context(), c, cp.namespace); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Fleetpulse API installed")
			return nil
		},
	}
	cp.add(cmd)
	return cmd
}

func newHubTokenCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "token", Short: "Create, list and revoke bootstrap tokens that let agents register"}
	cmd.AddCommand(newTokenCreateCommand(), newTokenListCommand(), newTokenRevokeCommand())
	return cmd
}

func newTokenCreateCommand() *cobra.Command {
	var (
		cp      controlPlaneFlags
		opts    registration.TokenOptions
		hubURL  string
		caFile  string
		onlyTok bool
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a bootstrap token and print the agent's join command",
		Long: `Create a bootstrap token, stored as a Secret on the hub's control plane with
only a hash of its secret, and print it once with the command an agent joins
with. The join command pins the hub's CA by the hash of its public key, so
the agent trusts nothing else on first contact.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cp.client()
			if err != nil {
				return err
			}
			pin := ""
			if caFile != "" {
				if pin, err = caPin(caFile); err != nil {
					return err
				}
			}
			token, tok, err := registration.NewTokens(c, cp.namespace).Create(cmd.Context(), opts)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if onlyTok {
				fmt.Fprintln(out, token)
				return nil
			}
			fmt.Fprintf(out, "token %s (expires %s, auto-accept %t", tok.ID, tok.Expiration.Format(time.RFC3339), tok.AutoAccept)
			if tok.ClusterSet != "" {
				fmt.Fprintf(out, ", cluster set %s", tok.ClusterSet)
			}
			fmt.Fprintf(out, ")\n\njoin a cluster with:\n\n  fleetpulse-agent --hub=%s --bootstrap-token=%s", hubURL, token)
			if pin != "" {
				fmt.Fprintf(out, " --hub-ca-hash=%s", pin)
			}
			fmt.Fprint(out, " --cluster-name=<name> --kubeconfig=<cluster kubeconfig>\n")
			if pin == "" {
				fmt.Fprint(out, "\n(with --ca-file the CA is pinned, and the settings of the agent's manifests, deploy/agent, are printed too)\n")
				return nil
			}
			fmt.Fprintf(out, "\nor, on the cluster, with the agent's manifests (deploy/agent):\n\n"+
				"  kubectl create namespace fleetpulse-agent\n"+
				"  kubectl -n fleetpulse-agent create configmap fleetpulse-agent --from-literal=hub=%s --from-literal=hub-ca-hash=%s --from-literal=cluster-name=<name>\n"+
				"  kubectl -n fleetpulse-agent create secret generic fleetpulse-bootstrap-token --from-literal=token=%s\n"+
				"  kubectl apply --server-side -k deploy/agent\n", hubURL, pin, token)
			return nil
		},
	}
	cp.add(cmd)
	f := cmd.Flags()
	f.DurationVar(&opts.TTL, "ttl", 24*time.Hour, "how long the token may be used")
	f.BoolVar(&opts.AutoAccept, "auto-accept", false, "accept clusters registering with this token without 'fleetpulse hub accept'")
	f.StringVar(&opts.ClusterSet, "cluster-set", "", "ClusterSet the registered clusters join")
	f.StringVar(&opts.Description, "description", "", "what the token is for")
	f.StringVar(&hubURL, "hub-url", "https://127.0.0.1:8443", "the hub's agent address, for the join command")
	f.StringVar(&caFile, "ca-file", "", "the hub's agent CA (--agents.client-ca-file), to pin it in the join command")
	f.BoolVar(&onlyTok, "print-token-only", false, "print only the token")
	return cmd
}

func caPin(caFile string) (string, error) {
	raw, err := os.ReadFile(caFile)
	if err != nil {
		return "", fmt.Errorf("read CA: %w", err)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return "", fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("parse CA %s: %w", caFile, err)
	}
	return agentapi.CAHash(cert), nil
}

func newTokenListCommand() *cobra.Command {
	var cp controlPlaneFlags
	cmd := &cobra.Command{
		Use: "list", Short: "List bootstrap tokens with their expiry, use count and state", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := cp.client()
			if err != nil {
				return err
			}
			toks, err := registration.NewTokens(c, cp.namespace).List(cmd.Context())
			if err != nil {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tEXPIRES\tAUTO-ACCEPT\tCLUSTER-SET\tUSED\tSTATE\tDESCRIPTION")
			for _, t := range toks {
				state := "valid"
				switch {
				case !t.RevokedAt.IsZero():
					state = "revoked"
				case time.Now().After(t.Expiration):
					state = "expired"
				}
				fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%d\t%s\t%s\n", t.ID, t.Expiration.Format(time.RFC3339), t.AutoAccept, t.ClusterSet, t.UsageCount, state, t.Description)
			}
			return w.Flush()
		},
	}
	cp.add(cmd)
	return cmd
}

func newTokenRevokeCommand() *cobra.Command {
	var cp controlPlaneFlags
	cmd := &cobra.Command{
		Use: "revoke ID", Short: "Revoke a bootstrap token: registrations with it are refused from now on", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := cp.client()
			if err != nil {
				return err
			}
			id, _, _ := strings.Cut(args[0], ".")
			if err := registration.NewTokens(c, cp.namespace).Revoke(cmd.Context(), id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "token %s revoked\n", id)
			return nil
		},
	}
	cp.add(cmd)
	return cmd
}

func newHubAcceptCommand() *cobra.Command {
	var (
		cp        controlPlaneFlags
		rekey     bool
		keySHA256 string
	)
	cmd := &cobra.Command{
		Use: "accept NAME...", Short: "Accept registered clusters: the hub signs their certificates and takes their telemetry",
		Long: `Accept registered clusters: the hub signs their certificates and takes their
telemetry.

A cluster is bound to the key its agent registered with. A registration under
its name with another key (an agent that lost its state, or someone else
holding a bootstrap token) gets no certificate and changes nothing; it is
recorded as a re-key request, which accept lists with the key's hash, the
token and the source address. Compare the hash with the one the agent logs
(key_sha256) and approve it with --rekey; the hub then issues certificates
for that key only.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keySHA256 != "" && !rekey {
				return fmt.Errorf("--key-sha256 names the key --rekey approves: give --rekey too")
			}
			c, err := cp.client()
			if err != nil {
				return err
			}
			for _, name := range args {
				if err := acceptCluster(cmd, c, name, rekey, keySHA256); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cp.add(cmd)
	f := cmd.Flags()
	f.BoolVar(&rekey, "rekey", false, "approve the cluster's pending re-key request: certificates are issued for its key from then on")
	f.StringVar(&keySHA256, "key-sha256", "", "with --rekey: the key to approve (sha256:<hex>, as the agent logs it); required when several requests are pending")
	return cmd
}

// acceptCluster accepts one cluster, approving its re-key request with
// rekey, and prints what it did and what is pending.
func acceptCluster(cmd *cobra.Command, c client.Client, name string, rekey bool, keySHA256 string) error {
	ctx, out := cmd.Context(), cmd.OutOrStdout()
	mc := &fleetv1.ManagedCluster{}
	if err := c.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
		return fmt.Errorf("get cluster %q: %w", name, err)
	}
	if rekey {
		ap, err := registration.ApproveRekey(mc, keySHA256, time.Now())
		if err != nil {
			return err
		}
		mc.Spec.Accepted = true
		// An update, not a patch: it fails if a request came in since the
		// read, so what is approved is what was checked.
		if err := c.Update(ctx, mc); err != nil {
			return fmt.Errorf("approve the re-key of cluster %q: %w", name, err)
		}
		fmt.Fprintf(out, "cluster %s accepted; re-key approved: key %s (requested %s with token %s from %s); previous key %s\n",
			name, ap.KeySHA256, ap.RequestedAt.Format(time.RFC3339), ap.TokenID, ap.Source, orNone(ap.PreviousKeySHA256))
		return nil
	}
	if !mc.Spec.Accepted {
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Spec.Accepted = true
		if err := c.Patch(ctx, mc, patch); err != nil {
			return fmt.Errorf("accept cluster %q: %w", name, err)
		}
	}
	fmt.Fprintf(out, "cluster %s accepted (key %s)\n", name, orNone(mc.Annotations[registration.AnnotationKeySHA256]))
	reqs, err := registration.RekeyRequests(mc)
	if err != nil {
		return err
	}
	for _, r := range reqs {
		fmt.Fprintf(out, "  pending re-key request: key %s, requested %s with token %s from %s\n"+
			"    approve it, if the cluster's agent logs this key, with: fleetpulse hub accept %s --rekey --key-sha256 %s\n",
			r.KeySHA256, r.RequestedAt.Format(time.RFC3339), r.TokenID, r.Source, name, r.KeySHA256)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "(none recorded)"
	}
	return s
}
