package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/internal/conflict"
	"github.com/fleetpulse/fleetpulse/hub/query"
)

// Condition reasons of a Placement's Satisfied condition.
const (
	ReasonAllSelected       = "AllSelected"
	ReasonNotEnoughClusters = "NotEnoughClusters"
	ReasonNoClusters        = "NoClusters"
	ReasonInvalidPredicates = "InvalidPredicates"
)

// Config configures the placement controller.
type Config struct {
	// ScoreInterval is how often every placement is evaluated again with
	// nothing else changing, so that PromQL scores are followed.
	ScoreInterval time.Duration
	// QueryTimeout bounds each PromQL prioritizer's query.
	QueryTimeout time.Duration
	// Workers is how many placements are reconciled at once.
	Workers int
}

// DefaultConfig returns the defaults: every 15 s, 10 s per query, 2 workers.
func DefaultConfig() Config {
	return Config{ScoreInterval: 15 * time.Second, QueryTimeout: 10 * time.Second, Workers: 2}
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.ScoreInterval <= 0 {
		errs = append(errs, fmt.Errorf("placement score interval must be positive, got %s", c.ScoreInterval))
	}
	if c.QueryTimeout <= 0 {
		errs = append(errs, fmt.Errorf("placement query timeout must be positive, got %s", c.QueryTimeout))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("placement workers must be at least 1, got %d", c.Workers))
	}
	return errors.Join(errs...)
}

// Setup adds the placement controller, with the default configuration, to
// the hub's controller manager. query reads the hub's telemetry for PromQL
// prioritizers (nil: they fail, and score nothing).
func Setup(mgr manager.Manager, query query.QueryFunc, logger *slog.Logger) error {
	return SetupWithConfig(mgr, DefaultConfig(), query, logger)
}

// SetupWithConfig is Setup with a configuration.
func SetupWithConfig(mgr manager.Manager, cfg Config, query query.QueryFunc, logger *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid placement configuration: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &reconciler{
		cfg: cfg, client: mgr.GetClient(), api: mgr.GetAPIReader(), query: query,
		recorder: mgr.GetEventRecorder("fleetpulse-placement"), now: time.Now,
	}
	base := logr.FromSlogHandler(logger.Handler())
	err := ctrl.NewControllerManagedBy(mgr).Named("placement").
		For(&fleetv1.Placement{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&fleetv1.PlacementDecision{}).
		Watches(&fleetv1.ManagedCluster{}, handler.EnqueueRequestsFromMapFunc(r.all), builder.WithPredicates(clusterChanged)).
		Watches(&fleetv1.ClusterSet{}, handler.EnqueueRequestsFromMapFunc(r.all),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))).
		// Several hubs may share a process (tests): the name is ours alone
		// within each manager.
		WithOptions(controller.Options{MaxConcurrentReconciles: cfg.Workers, SkipNameValidation: ptr.To(true)}).
		WithLogConstructor(func(req *reconcile.Request) logr.Logger {
			if req == nil {
				return base
			}
			return base.WithValues("placement", req.String())
		}).
		Complete(r)
	if err != nil {
		return fmt.Errorf("build placement controller: %w", err)
	}
	return nil
}

// clusterChanged passes the cluster updates that can change a decision,
// not heartbeat times and inventory counts.
var clusterChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	a, okA := e.ObjectOld.(*fleetv1.ManagedCluster)
	b, okB := e.ObjectNew.(*fleetv1.ManagedCluster)
	if !okA || !okB {
		return true
	}
	return !equality.Semantic.DeepEqual(a.Labels, b.Labels) ||
		!equality.Semantic.DeepEqual(a.Spec, b.Spec) ||
		(a.DeletionTimestamp == nil) != (b.DeletionTimestamp == nil) ||
		!equality.Semantic.DeepEqual(a.Status.ClusterClaims, b.Status.ClusterClaims) ||
		!equality.Semantic.DeepEqual(a.Status.Allocatable, b.Status.Allocatable)
}}

type reconciler struct {
	cfg      Config
	client   client.Client // cached reads, direct writes
	api      client.Reader // uncached reads, for the placement and its own decisions
	query    query.QueryFunc
	recorder events.EventRecorder
	now      func() time.Time
}

// all maps a cluster or cluster set to every placement: any may be
// affected, and placements are few.
func (r *reconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	var list fleetv1.PlacementList
	if err := r.client.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "list placements")
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, p := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&p)})
	}
	return out
}

// Reconcile recomputes one placement's decision and writes what differs.
// The placement and its decisions are read from the apiserver rather than
// the cache, so a pass never undoes the previous one's writes for want of
// seeing them.
func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return conflict.Quiet(r.reconcile)(ctx, req)
}

func (r *reconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	p := &fleetv1.Placement{}
	if err := r.api.Get(ctx, req.NamespacedName, p); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if p.DeletionTimestamp != nil {
		return ctrl.Result{}, nil // its decisions go with it (owner references)
	}
	now := r.now()
	var existing fleetv1.PlacementDecisionList
	if err := r.api.List(ctx, &existing, client.InNamespace(p.Namespace), client.MatchingLabels{fleetv1.LabelPlacement: p.Name}); err != nil {
		return ctrl.Result{}, fmt.Errorf("list placement decisions: %w", err)
	}
	sort.Slice(existing.Items, func(i, j int) bool { return existing.Items[i].Name < existing.Items[j].Name })
	current := map[string]fleetv1.ClusterDecision{}
	for _, d := range existing.Items {
		for _, cd := range d.Status.Decisions {
			if _, dup := current[cd.ClusterName]; !dup && cd.ClusterName != "" {
				current[cd.ClusterName] = cd
			}
		}
	}
	status := p.Status.DeepCopy()
	status.ObservedGeneration = p.Generation
	preds, err := compilePredicates(p.Spec.Predicates)
	if err != nil {
		// Keep the decision as it is: a typo must not move work.
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: fleetv1.PlacementConditionSatisfy, Status: metav1.ConditionFalse,
			Reason: ReasonInvalidPredicates, Message: err.Error(), ObservedGeneration: p.Generation})
		return ctrl.Result{}, r.writeStatus(ctx, p, status)
	}

	var clusters fleetv1.ManagedClusterList
	if err := r.client.List(ctx, &clusters); err != nil {
		return ctrl.Result{}, fmt.Errorf("list managed clusters: %w", err)
	}
	var sets fleetv1.ClusterSetList
	if err := r.client.List(ctx, &sets); err != nil {
		return ctrl.Result{}, fmt.Errorf("list cluster sets: %w", err)
	}
	others, err := r.otherDecisions(ctx, p)
	if err != nil {
		return ctrl.Result{}, err
	}
	promQL, scoreErrors := r.runQueries(ctx, p, now)
	for _, e := range scoreErrors {
		log.Info("PromQL prioritizer failed; no move on scores in this pass", "err", e)
	}
	res := schedule(input{placement: p, clusters: clusters.Items, sets: sets.Items, current: current, others: others,
		promQL: promQL, scoreErrors: scoreErrors, now: now}, preds)

	desired, groups := desiredDecisions(p, res.selected)
	if err := writeDecisions(ctx, r.client, desired, existing.Items); err != nil {
		return ctrl.Result{}, err
	}
	r.record(ctx, p, res)

	status.NumberOfSelectedClusters = int32(len(res.selected))
	status.DecisionGroups = groups
	if res.rescheduled {
		status.LastRescheduleTime = &metav1.Time{Time: ceilSecond(now)}
	}
	cond := metav1.Condition{Type: fleetv1.PlacementConditionSatisfy, Status: metav1.ConditionTrue, Reason: ReasonAllSelected,
		Message: res.message(), ObservedGeneration: p.Generation}
	if !res.satisfied() {
		cond.Status, cond.Reason = metav1.ConditionFalse, ReasonNotEnoughClusters
		if res.qualifying == 0 {
			cond.Reason = ReasonNoClusters
		}
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	if err := r.writeStatus(ctx, p, status); err != nil {
		return ctrl.Result{}, err
	}
	next := r.cfg.ScoreInterval
	if res.requeueAfter > 0 && res.requeueAfter < next {
		next = res.requeueAfter + 10*time.Millisecond
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

func (r *reconciler) writeStatus(ctx context.Context, p *fleetv1.Placement, status *fleetv1.PlacementStatus) error {
	if equality.Semantic.DeepEqual(&p.Status, status) {
		return nil
	}
	p.Status = *status
	if err := r.client.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("update placement status: %w", err)
	}
	return nil
}

// otherDecisions counts, per cluster, the decisions of every other
// placement (for Balance).
func (r *reconciler) otherDecisions(ctx context.Context, p *fleetv1.Placement) (map[string]int, error) {
	var all fleetv1.PlacementDecisionList
	if err := r.client.List(ctx, &all); err != nil {
		return nil, fmt.Errorf("list placement decisions: %w", err)
	}
	out := map[string]int{}
	for _, d := range all.Items {
		if d.Namespace == p.Namespace && d.Labels[fleetv1.LabelPlacement] == p.Name {
			continue
		}
		for _, cd := range d.Status.Decisions {
			out[cd.ClusterName]++
		}
	}
	return out, nil
}

// runQueries evaluates the placement's PromQL prioritizers.
func (r *reconciler) runQueries(ctx context.Context, p *fleetv1.Placement, now time.Time) (map[int]map[string]float64, []string) {
	out := map[int]map[string]float64{}
	var errs []string
	for i, c := range p.Spec.PrioritizerPolicy.Configurations {
		if c.ScoreCoordinate.Type != ScorePromQL || c.ScoreCoordinate.PromQL == nil || c.ScoreCoordinate.PromQL.Query == "" {
			continue
		}
		if r.query == nil {
			errs = append(errs, fmt.Sprintf("PromQL prioritizer %d: the hub has no telemetry to query", i))
			continue
		}
		qctx, cancel := context.WithTimeout(ctx, r.cfg.QueryTimeout)
		vals, err := queryScores(qctx, r.query, c.ScoreCoordinate.PromQL, now)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Sprintf("PromQL prioritizer %d: %v", i, err))
			continue
		}
		out[i] = vals
	}
	return out, errs
}

// record writes an Event on the placement for every change of its decision
// and logs it.
func (r *reconciler) record(ctx context.Context, p *fleetv1.Placement, res result) {
	log := logf.FromContext(ctx)
	swapped := map[string]bool{}
	for _, s := range res.swaps {
		out, in := s[0], s[1]
		swapped[out.cluster], swapped[in.cluster] = true, true
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "Rescheduled", "Reschedule",
			"moved from %s (score %d) to %s (score %d): beats it by more than hysteresis %d",
			out.cluster, out.score, in.cluster, in.score, p.Spec.Rescheduling.Hysteresis)
		log.Info("placement rescheduled", "from", out.cluster, "fromScore", out.score, "to", in.cluster, "toScore", in.score)
	}
	for _, m := range res.removed {
		if swapped[m.cluster] {
			continue
		}
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "ClusterDeselected", "Deselect", "%s (score %d) deselected: %s", m.cluster, m.score, truncate(m.why))
		log.Info("cluster deselected", "cluster", m.cluster, "score", m.score, "why", m.why)
	}
	for _, m := range res.added {
		if swapped[m.cluster] {
			continue
		}
		r.recorder.Eventf(p, nil, corev1.EventTypeNormal, "ClusterSelected", "Select", "%s selected (score %d, %s)", m.cluster, m.score, m.why)
		log.Info("cluster selected", "cluster", m.cluster, "score", m.score, "why", m.why)
	}
}

// ceilSecond rounds up to the second, the precision the API keeps times
// in, so that a stored lastRescheduleTime never cuts minInterval short.
func ceilSecond(t time.Time) time.Time {
	s := t.Truncate(time.Second)
	if s.Before(t) {
		s = s.Add(time.Second)
	}
	return s
}

func truncate(s string) string {
	const limit = 512
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
