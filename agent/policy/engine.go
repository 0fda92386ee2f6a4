package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/workqueue"

	"github.com/fleetpulse/fleetpulse/agent/internal/kubemapper"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Engine evaluates the Source's policies against the cluster, enforces
// those that say enforce, and hands their status to the StatusSink. A
// queue of policy keys feeds Workers workers; a key is evaluated by one
// worker at a time.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	dyn     dynamic.Interface
	mapper  *kubemapper.Mapper
	watches *watches
	queue   workqueue.TypedRateLimitingInterface[string]
	tel     *telemetry
	now     func() time.Time
	running atomic.Bool

	mu     sync.Mutex
	states map[string]*state
}

// state is what the engine keeps of a policy.
type state struct {
	// Guarded by Engine.mu: the latest policy from the source, and its
	// verdict for the gauge.
	policy  *fleetv1.Policy
	verdict fleetv1.ComplianceState

	// The worker's (one at a time per key).
	status     *fleetv1.PolicyStatus
	reported   *fleetv1.PolicyStatus // the last status reported
	reportedAt time.Time
	pruned     bool
	templates  []parsed
}

// New checks the configuration and builds an Engine; it starts nothing.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	rc, err := cfg.restConfig()
	if err != nil {
		return nil, err
	}
	if rc.QPS == 0 {
		rc.QPS, rc.Burst = 50, 100
	}
	if rc.UserAgent == "" {
		rc.UserAgent = cfg.FieldManager
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	mapper, err := kubemapper.New(rc)
	if err != nil {
		return nil, err
	}
	tel, err := newTelemetry(cfg.MeterProvider)
	if err != nil {
		return nil, fmt.Errorf("policy metrics: %w", err)
	}
	log := cfg.Logger
	if cfg.ClusterName != "" {
		log = log.With("cluster", cfg.ClusterName)
	}
	e := &Engine{
		cfg: cfg, log: log, dyn: dyn, mapper: mapper, tel: tel, now: time.Now, states: map[string]*state{},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](
			200*time.Millisecond, time.Minute)),
	}
	e.watches = newWatches(dyn, log, e.queue.Add)
	return e, nil
}

// Run evaluates policies until ctx ends, then stops every watch and
// returns nil. An Engine runs once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("policy engine: already run")
	}
	reg, err := e.tel.register(e.verdicts)
	if err != nil {
		return fmt.Errorf("register policy metrics: %w", err)
	}
	defer func() { _ = reg.Unregister() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e.watches.start(ctx)
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Go(func() {
			for e.next(ctx) {
			}
		})
	}
	e.log.Info("policy engine started", "workers", e.cfg.Workers)
	for {
		policies, changed := e.cfg.Source.Policies()
		e.sync(policies)
		select {
		case <-ctx.Done():
			e.queue.ShutDown()
			wg.Wait()
			e.watches.stop()
			e.log.Info("policy engine stopped")
			return nil
		case <-changed:
		}
	}
}

// sync takes in the source's set: new and changed policies are evaluated,
// those gone are forgotten.
func (e *Engine) sync(policies []*fleetv1.Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := make(map[string]bool, len(policies))
	for _, p := range policies {
		key := keyOf(p)
		seen[key] = true
		st := e.states[key]
		switch {
		case st == nil || st.policy.UID != p.UID:
			e.states[key] = &state{policy: p, verdict: fleetv1.Pending}
		case st.policy.Generation != p.Generation || (st.policy.DeletionTimestamp == nil) != (p.DeletionTimestamp == nil) ||
			!reflect.DeepEqual(st.policy.Spec, p.Spec):
			st.policy = p
		default:
			st.policy = p
			continue
		}
		e.queue.Add(key)
	}
	for key := range e.states {
		if !seen[key] {
			delete(e.states, key)
			e.queue.Add(key) // the worker lets its watches go
		}
	}
}

func (e *Engine) next(ctx context.Context) bool {
	key, quit := e.queue.Get()
	if quit {
		return false
	}
	defer e.queue.Done(key)
	err := e.process(ctx, key)
	switch {
	case err == nil:
		e.queue.Forget(key)
	case ctx.Err() != nil:
		return false
	default:
		e.log.Warn("policy not processed; retrying", "policy", key, "err", err)
		e.queue.AddRateLimited(key)
	}
	return true
}

// process evaluates (or prunes) one policy.
func (e *Engine) process(ctx context.Context, key string) error {
	e.mu.Lock()
	st := e.states[key]
	var p *fleetv1.Policy
	if st != nil {
		p = st.policy
	}
	e.mu.Unlock()
	if st == nil {
		e.watches.release(key)
		return nil
	}
	if p.DeletionTimestamp != nil {
		e.watches.release(key)
		if st.pruned {
			return nil
		}
		if err := e.Prune(ctx, p); err != nil {
			return err
		}
		if err := e.cfg.Sink.Pruned(ctx, refOf(p)); err != nil {
			return fmt.Errorf("report policy %s pruned: %w", key, err)
		}
		st.pruned = true
		return nil
	}

	start := time.Now()
	templates := e.evaluate(ctx, p, &st.templates)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	prev := st.status
	if prev == nil {
		prev = &p.Status // what the hub holds, from before a restart
	}
	now := e.now()
	status, changed := buildStatus(p, prev, templates, now)
	e.tel.duration.Record(ctx, time.Since(start).Seconds())
	st.status = status
	e.mu.Lock()
	st.verdict = status.Compliant
	e.mu.Unlock()
	if changed {
		e.tel.transition(ctx, p, status.Compliant)
		e.tel.remediated(ctx, p, prev, status.Compliant, now)
		e.log.Info("policy verdict changed", "policy", key, "from", prev.Compliant, "to", status.Compliant, "message", status.History[0].Message)
	}
	wait, periodic := e.interval(p, status.Compliant)
	if periodic {
		e.queue.AddAfter(key, wait)
	}
	return e.report(ctx, p, st, status, wait, periodic)
}

// evaluate evaluates every template of a policy, and enforces them if the
// policy says so.
func (e *Engine) evaluate(ctx context.Context, p *fleetv1.Policy, cache *[]parsed) []fleetv1.TemplateStatus {
	runs, ints := e.plan(ctx, p, parse(p, cache))
	e.watches.use(keyOf(p), ints)
	rd := cacheReader{w: e.watches, timeout: e.cfg.ListTimeout}
	e.scope(ctx, p, runs, rd)
	enforce := enforces(p)
	out := make([]fleetv1.TemplateStatus, len(runs))
	for i, r := range runs {
		if r.pending == "" {
			e.check(ctx, p, r, rd, enforce)
		}
		out[i] = templateStatus(r)
	}
	return out
}

// report hands the status to the sink when it changed, LastEvaluated
// aside, or when the last report is an evaluation interval old.
func (e *Engine) report(ctx context.Context, p *fleetv1.Policy, st *state, status *fleetv1.PolicyStatus, interval time.Duration, periodic bool) error {
	now := e.now()
	stale := periodic && now.Sub(st.reportedAt) >= interval*9/10
	if !stale && st.reported != nil && sameStatus(st.reported, status) {
		return nil
	}
	out := status.DeepCopy()
	if err := e.cfg.Sink.Report(ctx, refOf(p), out); err != nil {
		return fmt.Errorf("report status of policy %s: %w", keyOf(p), err)
	}
	st.reported, st.reportedAt = status, now
	return nil
}

// sameStatus compares two statuses but for LastEvaluated.
func sameStatus(a, b *fleetv1.PolicyStatus) bool {
	x, y := *a, *b
	x.LastEvaluated, y.LastEvaluated = nil, nil
	return reflect.DeepEqual(&x, &y)
}

// interval is when the policy is evaluated next, if it is.
func (e *Engine) interval(p *fleetv1.Policy, state fleetv1.ComplianceState) (time.Duration, bool) {
	spec, def := p.Spec.EvaluationInterval.NonCompliant, DefaultNonCompliantInterval
	if state == fleetv1.Compliant {
		spec, def = p.Spec.EvaluationInterval.Compliant, DefaultCompliantInterval
	}
	if strings.EqualFold(spec, "never") {
		if state == fleetv1.Pending {
			// Pending is no verdict: what kept the policy from one (a
			// kind not yet installed) is looked at again.
			return DefaultNonCompliantInterval, true
		}
		return 0, false
	}
	if spec == "" {
		return def, true
	}
	d, err := time.ParseDuration(spec)
	if err != nil || d <= 0 {
		e.log.Warn("bad evaluationInterval; using the default", "policy", keyOf(p), "interval", spec, "default", def)
		return def, true
	}
	return d, true
}

// verdicts reads every policy's verdict for the gauge.
func (e *Engine) verdicts() []verdict {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]verdict, 0, len(e.states))
	for _, st := range e.states {
		sev := strings.ToLower(string(st.policy.Spec.Severity))
		if sev == "" {
			sev = string(fleetv1.SeverityMedium)
		}
		ns, name := rootOf(st.policy)
		out = append(out, verdict{policy: name, namespace: ns, severity: sev, standards: standardsOf(st.policy), state: st.verdict})
	}
	return out
}

func enforces(p *fleetv1.Policy) bool {
	return strings.EqualFold(string(p.Spec.RemediationAction), string(fleetv1.RemediationEnforce))
}

// rootOf names the root policy a replica stands for (its label
// policy.fleetpulse.io/root-policy, "<namespace>.<name>"; namespaces have
// no dots), so that metrics read the same on every cluster; a policy
// without the label stands for itself.
func rootOf(p *fleetv1.Policy) (namespace, name string) {
	if ns, n, ok := strings.Cut(p.Labels[fleetv1.LabelRootPolicy], "."); ok && ns != "" && n != "" {
		return ns, n
	}
	return p.Namespace, p.Name
}
