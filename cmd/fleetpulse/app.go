package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func newAppCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Show and steer the rollouts of an application (a ManifestWorkSet)",
		Long: `An application is a ManifestWorkSet on the hub's control plane: every change of
its template is a revision, rolled out stage by stage and gated by the fleet's
telemetry. 'status' shows where the rollout stands, per stage and per cluster,
with the gate value that decided each verdict; 'history' lists the revisions;
'pause', 'resume', 'approve' and 'rollback' steer the rollout.

NAME is NAME or NAMESPACE/NAME (the namespace defaults to --namespace).`,
	}
	cmd.AddCommand(newAppStatusCommand(), newAppHistoryCommand(), newAppPauseCommand(), newAppResumeCommand(),
		newAppApproveCommand(), newAppRollbackCommand())
	return cmd
}

// appFlags reach one set on the control plane.
type appFlags struct {
	cp        controlPlaneFlags
	namespace string
}

func (f *appFlags) add(cmd *cobra.Command) {
	f.cp.addKubeconfig(cmd)
	cmd.Flags().StringVarP(&f.namespace, "namespace", "n", "default", "namespace of the ManifestWorkSet")
}

// set reads the named set.
func (f *appFlags) set(ctx context.Context, name string) (client.Client, *fleetv1.ManifestWorkSet, error) {
	c, err := f.cp.client()
	if err != nil {
		return nil, nil, err
	}
	key := f.key(name)
	mws := &fleetv1.ManifestWorkSet{}
	if err := c.Get(ctx, key, mws); err != nil {
		return nil, nil, fmt.Errorf("get ManifestWorkSet %s: %w", key, err)
	}
	return c, mws, nil
}

func (f *appFlags) key(name string) client.ObjectKey {
	if ns, n, ok := strings.Cut(name, "/"); ok {
		return client.ObjectKey{Namespace: ns, Name: n}
	}
	return client.ObjectKey{Namespace: f.namespace, Name: name}
}

// edit changes a set and writes it, again on a conflict with the hub's
// status writes.
func (f *appFlags) edit(ctx context.Context, name string, change func(*fleetv1.ManifestWorkSet) error) (*fleetv1.ManifestWorkSet, error) {
	c, err := f.cp.client()
	if err != nil {
		return nil, err
	}
	key := f.key(name)
	mws := &fleetv1.ManifestWorkSet{}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(ctx, key, mws); err != nil {
			return err
		}
		if err := change(mws); err != nil {
			return err
		}
		return c.Update(ctx, mws)
	})
	if err != nil {
		return nil, fmt.Errorf("update ManifestWorkSet %s: %w", key, err)
	}
	return mws, nil
}

func newAppStatusCommand() *cobra.Command {
	var f appFlags
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Print the rollout: its stages, and per cluster the revision, the verdict and the signal that decided it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, mws, err := f.set(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var works fleetv1.ManifestWorkList
			if err := c.List(cmd.Context(), &works, client.MatchingLabels{fleetv1.LabelManifestWorkSet: mws.Namespace + "." + mws.Name}); err != nil {
				return fmt.Errorf("list manifest works: %w", err)
			}
			running := map[string]string{}
			for _, w := range works.Items {
				running[w.Namespace] = orDash(w.Labels[fleetv1.LabelRevision])
			}
			return writeAppStatus(cmd.OutOrStdout(), mws, running)
		},
	}
	f.add(cmd)
	return cmd
}

// writeAppStatus prints the set's rollout; running maps each cluster to
// the revision its work carries.
func writeAppStatus(w io.Writer, mws *fleetv1.ManifestWorkSet, running map[string]string) error {
	st := mws.Status
	fmt.Fprintf(w, "%s/%s: revision %d, stable %s", mws.Namespace, mws.Name, st.CurrentRevision, revOrNone(st.StableRevision))
	if mws.Spec.Paused {
		fmt.Fprint(w, ", paused")
	}
	fmt.Fprintln(w)
	ro := st.Rollout
	if ro == nil {
		fmt.Fprintln(w, "no rollout yet")
		return nil
	}
	fmt.Fprintf(w, "rollout of revision %d: %s", ro.Revision, ro.Phase)
	if ro.Reason != "" {
		fmt.Fprintf(w, " (%s)", ro.Reason)
	}
	if int(ro.CurrentStage) < len(ro.Stages) {
		fmt.Fprintf(w, ", stage %d of %d", ro.CurrentStage+1, len(ro.Stages))
	}
	fmt.Fprintln(w)
	if ro.Message != "" {
		fmt.Fprintln(w, oneLine(ro.Message))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tNAME\tCLUSTERS\tFAILED\tPHASE\tSTARTED\tAPPROVED BY")
	for i, s := range ro.Stages {
		fmt.Fprintf(tw, "%d\t%s\t%d\t%d/%d\t%s\t%s\t%s\n", i, s.Name, s.Clusters, s.Failed, s.MaxFailures, s.Phase, since(s.StartTime), orDash(s.ApprovedBy))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLUSTER\tSTAGE\tREVISION\tVERDICT\tSIGNAL\tGATE\tVALUE\tTHRESHOLD")
	var queries []string
	for _, c := range ro.Clusters {
		signal, gate, value, threshold := "-", "-", "-", "-"
		if d := c.DecidedBy; d != nil {
			signal, gate, value, threshold = d.Signal, orDash(d.Gate), orDash(d.Value), orDash(d.Threshold)
			if d.Signal == fleetv1.SignalWork || d.Signal == fleetv1.SignalRollback {
				threshold = oneLine(d.Message)
			}
			if d.Query != "" && c.Verdict != fleetv1.VerdictSucceeded {
				queries = append(queries, fmt.Sprintf("%s: %s", c.Cluster, oneLine(d.Query)))
			}
		} else if len(c.Gates) > 0 {
			// Still measuring: the last values.
			var vals []string
			for _, g := range c.Gates {
				vals = append(vals, fmt.Sprintf("%s=%s", g.Name, orDash(g.Value)))
			}
			value = strings.Join(vals, ",")
		}
		rev := running[c.Cluster]
		if rev == "" {
			rev = "-"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Cluster, c.Stage, rev, c.Verdict, signal, gate, value, threshold)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(queries) > 0 {
		fmt.Fprintln(w, "\nqueries that decided:")
		for _, q := range queries {
			fmt.Fprintln(w, "  "+q)
		}
	}
	return nil
}

func revOrNone(n int64) string {
	if n == 0 {
		return "none"
	}
	return strconv.FormatInt(n, 10)
}

func since(t *metav1.Time) string {
	if t == nil {
		return "-"
	}
	return time.Since(t.Time).Round(time.Second).String() + " ago"
}

func newAppHistoryCommand() *cobra.Command {
	var f appFlags
	cmd := &cobra.Command{
		Use:   "history NAME",
		Short: "List the revisions: number, when, who, why, and how many clusters run each",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, mws, err := f.set(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			revs, err := revisionsOf(cmd.Context(), c, mws)
			if err != nil {
				return err
			}
			return writeHistory(cmd.OutOrStdout(), mws, revs)
		},
	}
	f.add(cmd)
	return cmd
}

// revisionsOf lists a set's revisions, oldest first.
func revisionsOf(ctx context.Context, c client.Client, mws *fleetv1.ManifestWorkSet) ([]fleetv1.ManifestWorkSetRevision, error) {
	var list fleetv1.ManifestWorkSetRevisionList
	if err := c.List(ctx, &list, client.InNamespace(mws.Namespace)); err != nil {
		return nil, fmt.Errorf("list revisions: %w", err)
	}
	out := slices.DeleteFunc(list.Items, func(r fleetv1.ManifestWorkSetRevision) bool { return r.Spec.ManifestWorkSet != mws.Name })
	slices.SortFunc(out, func(a, b fleetv1.ManifestWorkSetRevision) int { return int(a.Spec.Revision - b.Spec.Revision) })
	return out, nil
}

func writeHistory(w io.Writer, mws *fleetv1.ManifestWorkSet, revs []fleetv1.ManifestWorkSetRevision) error {
	clusters := map[int64]int32{}
	for _, rc := range mws.Status.Revisions {
		clusters[rc.Revision] = rc.Clusters
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tCREATED\tBY\tCLUSTERS\tSTATE\tHASH\tCAUSE")
	for _, r := range revs {
		var state []string
		n := r.Spec.Revision
		if n == mws.Status.CurrentRevision {
			state = append(state, "current")
			if ro := mws.Status.Rollout; ro != nil && ro.Revision == n {
				state = append(state, string(ro.Phase))
			}
		}
		if n == mws.Status.StableRevision {
			state = append(state, "stable")
		}
		cause := r.Spec.ChangeCause
		if r.Spec.RollbackOf != 0 && cause == "" {
			cause = fmt.Sprintf("rollback to revision %d", r.Spec.RollbackOf)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", n, r.CreationTimestamp.UTC().Format(time.RFC3339), orDash(r.Spec.ChangedBy),
			clusters[n], orDash(strings.Join(state, ",")), r.Spec.TemplateHash, orDash(oneLine(cause)))
	}
	return tw.Flush()
}

func newAppPauseCommand() *cobra.Command {
	var f appFlags
	cmd := &cobra.Command{
		Use:   "pause NAME",
		Short: "Keep the rollout's next stage from starting (spec.paused); the running stage is still measured",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mws, err := f.edit(cmd.Context(), args[0], func(s *fleetv1.ManifestWorkSet) error { s.Spec.Paused = true; return nil })
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s paused\n", mws.Namespace, mws.Name)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func newAppResumeCommand() *cobra.Command {
	var f appFlags
	cmd := &cobra.Command{
		Use:   "resume NAME",
		Short: "Let a paused rollout go on; a stage paused on a failure or no data is measured again from scratch",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mws, err := f.edit(cmd.Context(), args[0], func(s *fleetv1.ManifestWorkSet) error {
				s.Spec.Paused = false
				setAnnotation(s, fleetv1.AnnotationResume, time.Now().UTC().Format(time.RFC3339Nano))
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s resumed\n", mws.Namespace, mws.Name)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

func setAnnotation(o metav1.Object, k, v string) {
	a := o.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	o.SetAnnotations(a)
}

// user names who runs the command, for the records it writes.
func user() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "fleetpulse"
}

func newAppApproveCommand() *cobra.Command {
	var (
		f                 appFlags
		stage             int32
		approver, comment string
	)
	cmd := &cobra.Command{
		Use:   "approve NAME",
		Short: "Let a stage of the current rollout start: create a RolloutApproval (the stage waiting, unless --stage)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, mws, err := f.set(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ro := mws.Status.Rollout
			if ro == nil || ro.Revision != mws.Status.CurrentRevision {
				return fmt.Errorf("%s/%s has no rollout of its current revision yet", mws.Namespace, mws.Name)
			}
			if !cmd.Flags().Changed("stage") {
				if ro.Phase != fleetv1.RolloutWaitingApproval {
					return fmt.Errorf("the rollout of revision %d waits for no approval (%s); name a later stage with --stage", ro.Revision, ro.Phase)
				}
				stage = ro.CurrentStage
			}
			a := &fleetv1.RolloutApproval{
				ObjectMeta: metav1.ObjectMeta{Namespace: mws.Namespace, Name: fmt.Sprintf("%s-%d-%d", mws.Name, ro.Revision, stage)},
				Spec:       fleetv1.RolloutApprovalSpec{ManifestWorkSet: mws.Name, Revision: ro.Revision, Stage: stage, Approver: approver, Comment: comment},
			}
			if err := c.Create(cmd.Context(), a); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create RolloutApproval %s: %w", a.Name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stage %d of revision %d approved by %s (RolloutApproval %s/%s)\n", stage, ro.Revision, approver, a.Namespace, a.Name)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().Int32Var(&stage, "stage", 0, "the stage to approve (default: the one waiting)")
	cmd.Flags().StringVar(&approver, "approver", user(), "who approves")
	cmd.Flags().StringVar(&comment, "comment", "", "why")
	return cmd
}

func newAppRollbackCommand() *cobra.Command {
	var (
		f      appFlags
		to     int64
		by, cs string
	)
	cmd := &cobra.Command{
		Use:   "rollback NAME",
		Short: "Put an earlier revision's template back: a new revision, rolled out like any other",
		Long: `Write an earlier revision's template into the ManifestWorkSet, with the
annotations that record the change (fleetpulse.io/change-cause,
fleetpulse.io/changed-by, fleetpulse.io/rollback-of). The hub makes it a new
revision and rolls it out by the set's strategy; a paused set is unpaused.
Without --to-revision: the stable revision, or else the one before the current.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, mws, err := f.set(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			revs, err := revisionsOf(cmd.Context(), c, mws)
			if err != nil {
				return err
			}
			target, err := rollbackTarget(mws, revs, to)
			if err != nil {
				return err
			}
			cause := cs
			if cause == "" {
				cause = fmt.Sprintf("rollback to revision %d", target.Spec.Revision)
			}
			mws, err = f.edit(cmd.Context(), args[0], func(s *fleetv1.ManifestWorkSet) error {
				s.Spec.ManifestWorkTemplate = *target.Spec.ManifestWorkTemplate.DeepCopy()
				s.Spec.Chart = nil
				if c := target.Spec.Chart; c != nil {
					// The set's own manifests and the chart source come back;
					// the hub reuses the revision's rendered objects.
					own := s.Spec.ManifestWorkTemplate.Workload.Manifests
					s.Spec.ManifestWorkTemplate.Workload.Manifests = own[:max(0, len(own)-int(c.Objects))]
					s.Spec.Chart = c.Source.DeepCopy()
				}
				s.Spec.Paused = false
				setAnnotation(s, fleetv1.AnnotationChangeCause, cause)
				setAnnotation(s, fleetv1.AnnotationChangedBy, by)
				setAnnotation(s, fleetv1.AnnotationRollbackOf, strconv.FormatInt(target.Spec.Revision, 10))
				return nil
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s/%s: the template of revision %d is back (%s); the hub rolls it out as a new revision\n",
				mws.Namespace, mws.Name, target.Spec.Revision, cause)
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().Int64Var(&to, "to-revision", 0, "the revision to go back to (default: the stable one, else the one before the current)")
	cmd.Flags().StringVar(&by, "by", user(), "who rolls back, recorded in the revision")
	cmd.Flags().StringVar(&cs, "cause", "", `why, recorded in the revision (default "rollback to revision N")`)
	return cmd
}

// rollbackTarget picks the revision to go back to.
func rollbackTarget(mws *fleetv1.ManifestWorkSet, revs []fleetv1.ManifestWorkSetRevision, to int64) (*fleetv1.ManifestWorkSetRevision, error) {
	find := func(n int64) *fleetv1.ManifestWorkSetRevision {
		for i := range revs {
			if revs[i].Spec.Revision == n {
				return &revs[i]
			}
		}
		return nil
	}
	cur := mws.Status.CurrentRevision
	switch {
	case to != 0:
		if r := find(to); r != nil {
			return r, nil
		}
		return nil, fmt.Errorf("revision %d is not kept (see fleetpulse app history)", to)
	case mws.Status.StableRevision != 0 && mws.Status.StableRevision != cur:
		if r := find(mws.Status.StableRevision); r != nil {
			return r, nil
		}
	}
	for i := len(revs) - 1; i >= 0; i-- {
		if revs[i].Spec.Revision < cur {
			return &revs[i], nil
		}
	}
	return nil, fmt.Errorf("%s/%s has no revision before %d to go back to", mws.Namespace, mws.Name, cur)
}
