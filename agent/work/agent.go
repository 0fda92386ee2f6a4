package work

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/workqueue"

	"github.com/fleetpulse/fleetpulse/agent/internal/backoff"
	"github.com/fleetpulse/fleetpulse/agent/internal/health"
	"github.com/fleetpulse/fleetpulse/agent/registration"
	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// sweepKey in the queue makes the worker enqueue every listed work and
// every record: after a new list, and every sync interval.
const sweepKey = ""

// errPending is a deletion waiting for objects to go.
var errPending = errors.New("waiting for deleted objects to go")

// Agent applies the hub's ManifestWorks for this cluster. One goroutine
// long-polls the hub for the list; one worker applies works one at a time,
// so records and states need no lock.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	hub     *hubClient
	records records
	applier *applier
	watches *watches
	queue   workqueue.TypedRateLimitingInterface[string]
	now     func() time.Time

	mu     sync.Mutex
	works  map[string]agentapi.WorkItem // the latest list
	listed bool

	// The worker's.
	recs   map[string]*record
	states map[string]*workState
	// released holds the UIDs of deleted works the hub was told are
	// cleaned up, until the hub stops listing them.
	released map[string]bool
	// sweeps counts sweeps; the queue being first in, first out, the works
	// a sweep enqueued have been synced when the next one is counted.
	sweeps atomic.Int64
	stats  *Stats
	health *health.Health
}

// workState is what the agent remembers of a work between syncs.
type workState struct {
	uid        string
	generation int64
	// applied is the last generation applied without error, for the log.
	applied int64
	// reported is the status the hub holds, as last listed or reported.
	reported []byte
	// drift maps ordinals to when their object's drift was last
	// corrected, for the current generation.
	drift     map[int]time.Time
	lastDrift *metav1.Time
	prev      *fleetv1.ManifestWorkStatus
}

// New checks the configuration and builds an Agent; it starts nothing.
func New(cfg Config) (*Agent, error) {
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
	u, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return nil, fmt.Errorf("apiserver URL: %w", err)
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	stats := cfg.Stats
	if stats == nil {
		stats = NewStats()
	}
	a := &Agent{
		cfg: cfg, log: cfg.Logger.With("cluster", cfg.ClusterName), stats: stats, health: health.New(cfg.ReportHealth),
		hub:     newHubClient(cfg.Hub, registration.PathsIn(cfg.StateDir)),
		records: records{dyn: dyn, namespace: cfg.Namespace},
		applier: &applier{dyn: dyn, mapper: newMapper(u.String(), hc), fieldManager: cfg.FieldManager},
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.NewTypedItemExponentialFailureRateLimiter[string](
			200*time.Millisecond, 30*time.Second)),
		now: time.Now, works: map[string]agentapi.WorkItem{}, states: map[string]*workState{}, released: map[string]bool{},
	}
	// Changes of applied objects come in bursts (a rollout moves a
	// Deployment's status many times): a short delay folds them together.
	a.watches = newWatches(dyn, func(work string) { a.queue.AddAfter(work, 200*time.Millisecond) })
	return a, nil
}

// Run applies works until ctx ends. It reads its records first, retrying
// until the cluster answers: without them it cannot tell what it applied.
// Hub outages are retried, never fatal; a deregistered cluster's agent is
// stopped by registration.
func (a *Agent) Run(ctx context.Context) error {
	defer a.hub.close()
	defer a.watches.stop()
	// The queue runs goroutines from New on: they end with it, also when
	// Run ends before the records could be read.
	defer a.queue.ShutDown()
	bo := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for {
		err := a.records.ensureNamespace(ctx)
		if err == nil {
			a.recs, err = a.records.load(ctx)
		}
		if err == nil {
			a.health.Set("records", nil)
			break
		}
		a.log.Warn("cannot read the work records; retrying", "err", err)
		a.health.Set("records", fmt.Errorf("cannot read the work records in namespace %s: %w", a.cfg.Namespace, err))
		if backoff.Sleep(ctx, bo.Next(0)) != nil {
			return nil
		}
	}
	a.log.Info("work agent started", "hub", a.cfg.Hub, "records", len(a.recs), "namespace", a.cfg.Namespace)
	go func() {
		<-ctx.Done()
		a.queue.ShutDown()
	}()
	go a.poll(ctx)
	go a.tick(ctx)
	for a.next(ctx) {
	}
	return nil
}

// poll keeps the latest list of works, long-polling the hub.
func (a *Agent) poll(ctx context.Context) {
	rv, lastErr := "", ""
	bo := backoff.Backoff{Min: time.Second, Max: 30 * time.Second}
	for ctx.Err() == nil {
		list, err := a.hub.list(ctx, rv, a.cfg.PollTimeout)
		if ctx.Err() == nil {
			a.stats.lists[resultIndex(err)].Add(1)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			var he *hubError
			hint := time.Duration(0)
			if errors.As(err, &he) {
				hint = he.RetryAfter
				if he.Deregistered {
					hint = time.Minute // registration stops the agent
				}
			}
			if msg := err.Error(); msg != lastErr {
				a.log.Warn("cannot list works; retrying", "err", err)
				lastErr = msg
			}
			a.health.Set("list", fmt.Errorf("cannot list works: %w", err))
			_ = backoff.Sleep(ctx, bo.Next(hint))
			continue
		}
		bo.Reset()
		a.health.Set("list", nil)
		if lastErr != "" {
			a.log.Info("listing works again")
			lastErr = ""
		}
		if list == nil {
			continue // unchanged
		}
		rv = list.ResourceVersion
		works := make(map[string]agentapi.WorkItem, len(list.Items))
		for _, it := range list.Items {
			works[it.Name] = it
		}
		a.mu.Lock()
		first := !a.listed
		a.works, a.listed = works, true
		a.mu.Unlock()
		a.stats.works.Store(int64(len(works)))
		if first {
			a.log.Info("works listed", "works", len(works))
		}
		a.queue.Add(sweepKey)
	}
}

// tick applies every work again every sync interval.
func (a *Agent) tick(ctx context.Context) {
	t := time.NewTicker(a.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.mu.Lock()
			listed := a.listed
			a.mu.Unlock()
			if listed {
				a.queue.Add(sweepKey)
			}
		}
	}
}

func (a *Agent) next(ctx context.Context) bool {
	name, quit := a.queue.Get()
	if quit {
		return false
	}
	defer a.queue.Done(name)
	err := a.sync(ctx, name)
	switch {
	case err == nil:
		a.queue.Forget(name)
	case ctx.Err() != nil:
		return false
	case errors.Is(err, errPending):
		a.queue.AddRateLimited(name)
	default:
		a.log.Warn("work not in its declared state yet; retrying", "work", name, "err", err)
		a.queue.AddRateLimited(name)
	}
	return true
}

// sync brings one work's objects to what the hub says.
func (a *Agent) sync(ctx context.Context, name string) error {
	a.mu.Lock()
	item, listed := a.works[name]
	var all []string
	if name == sweepKey {
		uids := map[string]bool{}
		for n, it := range a.works {
			all, uids[it.UID] = append(all, n), true
		}
		for uid := range a.released {
			if !uids[uid] {
				delete(a.released, uid) // the hub let it go
			}
		}
	}
	a.mu.Unlock()
	if name == sweepKey {
		for n := range a.recs {
			if !slices.Contains(all, n) {
				all = append(all, n)
			}
		}
		for _, n := range all {
			a.queue.Add(n)
		}
		a.sweeps.Add(1)
		return nil
	}
	rec := a.recs[name]
	switch {
	case listed && !item.Deleting:
		return a.apply(ctx, &item, rec)
	case listed:
		return a.remove(ctx, &item, rec, item.Spec.DeleteOption)
	case rec != nil:
		// Gone from the hub without the agent seeing it deleted (its
		// finalizer was removed by hand): what it applied goes all the same.
		return a.remove(ctx, nil, rec, rec.DeleteOption)
	}
	delete(a.states, name)
	return nil
}

// state returns the work's state, new when the work is.
func (a *Agent) state(item *agentapi.WorkItem) *workState {
	st := a.states[item.Name]
	if st == nil || st.uid != item.UID {
		st = &workState{uid: item.UID, generation: item.Generation, drift: map[int]time.Time{}}
		if item.Status != nil {
			st.reported, _ = json.Marshal(item.Status)
			st.prev = item.Status.DeepCopy()
			st.lastDrift = item.Status.LastDriftTime
		}
		a.states[item.Name] = st
	}
	if st.generation != item.Generation {
		st.generation, st.drift = item.Generation, map[int]time.Time{}
	}
	return st
}

// apply applies a work's manifests in order, records what it applied,
// removes what left the work, and reports the status when it changed.
func (a *Agent) apply(ctx context.Context, item *agentapi.WorkItem, rec *record) error {
	st := a.state(item)
	now := a.now()
	mfs := a.applier.decode(ctx, &item.Spec)
	if rec == nil {
		rec = &record{Work: item.Name}
		a.recs[item.Name] = rec
	}
	// Write ahead: every object about to be created is in the record
	// before it exists, so that a crash cannot orphan it.
	dirty := rec.cm == nil
	if rec.WorkUID != item.UID {
		rec.WorkUID, dirty = item.UID, true
	}
	if !sameJSON(rec.DeleteOption, item.Spec.DeleteOption) {
		rec.DeleteOption, dirty = item.Spec.DeleteOption.DeepCopy(), true
	}
	for _, mf := range mfs {
		if mf.err == nil && owned(mf.strategy.Type) && rec.find(mf.id) < 0 {
			rec.Objects, dirty = append(rec.Objects, appliedObject{objectID: mf.id}), true
		}
	}
	if dirty {
		if err := a.records.save(ctx, rec); err != nil {
			return err
		}
		dirty = false
	}

	results := make([]*applied, len(mfs))
	errs := make([]error, len(mfs))
	drop := map[objectID]bool{} // entries that are not, or no longer, the agent's
	for i, mf := range mfs {
		if mf.err != nil {
			errs[i] = mf.err
			continue
		}
		results[i], errs[i] = a.applier.apply(ctx, mf)
		a.stats.applies[resultIndex(errs[i])].Add(1)
		j := rec.find(mf.id)
		if !owned(mf.strategy.Type) {
			if j >= 0 {
				drop[rec.Objects[j].objectID] = true // now read only: the agent lets it be
			}
			continue
		}
		if errs[i] != nil || j < 0 {
			continue
		}
		entry, res := &rec.Objects[j], results[i]
		if entry.UID != "" && entry.Hash == mf.hash && (res.before == nil || changed(res.before, res.after)) {
			st.drift[i], st.lastDrift = now, &metav1.Time{Time: now.Truncate(time.Second)}
			a.stats.drifts.Add(1)
			a.log.Info("drift corrected", "work", item.Name, "object", mf.id.String())
			if err := a.applier.driftEvent(ctx, a.cfg.ClusterName, item.Name, res.after, now); err != nil {
				a.log.Warn("record drift event", "work", item.Name, "object", mf.id.String(), "err", err)
			}
		}
		if mf.strategy.Type == fleetv1.UpdateCreateOnly && !res.created && entry.UID == "" && !managedBy(res.after, a.cfg.FieldManager) {
			drop[entry.objectID] = true // it was there before: not the agent's to delete
			continue
		}
		if uid := string(res.after.GetUID()); entry.UID != uid || entry.Hash != mf.hash || entry.Version != mf.id.Version {
			entry.UID, entry.Hash, entry.objectID, dirty = uid, mf.hash, mf.id, true
		}
	}

	// Objects that left the work are deleted (or orphaned). A manifest that
	// could not be read or mapped names no object, so nothing is removed
	// until every manifest is understood.
	var removeErrs []error
	if !slices.ContainsFunc(mfs, func(mf *manifest) bool { return mf.err != nil }) {
		for _, o := range rec.Objects {
			if drop[o.objectID] || slices.ContainsFunc(mfs, func(mf *manifest) bool { return mf.id.same(o.objectID) }) {
				continue
			}
			if orphaned(item.Spec.DeleteOption, o.objectID) {
				a.log.Info("object left the work; orphaned", "work", item.Name, "object", o.String())
				drop[o.objectID] = true
				continue
			}
			gone, err := a.applier.remove(ctx, o)
			switch {
			case err != nil:
				removeErrs = append(removeErrs, err)
			case gone:
				a.log.Info("object left the work; deleted", "work", item.Name, "object", o.String())
				drop[o.objectID] = true
			default:
				removeErrs = append(removeErrs, fmt.Errorf("%s: %w", o, errPending))
			}
		}
	}
	if len(drop) > 0 {
		rec.Objects = slices.DeleteFunc(rec.Objects, func(o appliedObject) bool { return drop[o.objectID] })
		dirty = true
	}
	if dirty {
		if err := a.records.save(ctx, rec); err != nil {
			return err
		}
	}
	a.watches.track(ctx, item.Name, rec.Objects)
	if failed := slices.ContainsFunc(errs, func(err error) bool { return err != nil }); !failed && st.applied != item.Generation {
		st.applied = item.Generation
		a.log.Info("work applied", "work", item.Name, "generation", item.Generation, "objects", len(mfs))
	}

	status := a.status(item, st, mfs, results, errs, now)
	if err := a.report(ctx, item, st, status); err != nil {
		return err
	}
	return errors.Join(append(errs, removeErrs...)...)
}

// report sends the status when it differs from what the hub holds.
func (a *Agent) report(ctx context.Context, item *agentapi.WorkItem, st *workState, status *fleetv1.ManifestWorkStatus) error {
	raw, err := json.Marshal(status)
	if err != nil {
		return err
	}
	if string(raw) == string(st.reported) {
		return nil
	}
	err = a.hub.putStatus(ctx, item.Name, agentapi.WorkStatusRequest{UID: item.UID, Status: *status})
	a.stats.reports[resultIndex(err)].Add(1)
	switch code := hubCode(err); {
	case err == nil:
		st.reported, st.prev = raw, status
	case code == http.StatusNotFound || code == http.StatusConflict:
		// The work went or was replaced: the next list says how.
	default:
		a.health.Set("status", fmt.Errorf("cannot report the status of work %s: %w", item.Name, err))
		return err
	}
	a.health.Set("status", nil)
	return nil
}

// remove deletes (or leaves, per the delete option) what a work applied,
// newest first, and once everything is gone forgets the work and, for a
// work the hub lists as deleting, tells the hub.
func (a *Agent) remove(ctx context.Context, item *agentapi.WorkItem, rec *record, opt *fleetv1.DeleteOption) error {
	name := ""
	switch {
	case item != nil:
		name = item.Name
	case rec != nil:
		name = rec.Work
	}
	if rec != nil {
		var errs []error
		kept := rec.Objects[:0:0]
		for j := len(rec.Objects) - 1; j >= 0; j-- {
			o := rec.Objects[j]
			if orphaned(opt, o.objectID) {
				a.log.Info("work deleted; object orphaned", "work", name, "object", o.String())
				continue
			}
			gone, err := a.applier.remove(ctx, o)
			switch {
			case err != nil:
				errs = append(errs, err)
			case !gone:
				errs = append(errs, fmt.Errorf("%s: %w", o, errPending))
			default:
				a.log.Info("work deleted; object deleted", "work", name, "object", o.String())
				continue
			}
			kept = append([]appliedObject{o}, kept...)
		}
		if len(kept) > 0 {
			if len(kept) != len(rec.Objects) {
				rec.Objects = kept
				if err := a.records.save(ctx, rec); err != nil {
					return err
				}
			}
			a.watches.track(ctx, name, rec.Objects)
			return errors.Join(errs...)
		}
		if err := a.records.remove(ctx, rec); err != nil {
			return err
		}
		delete(a.recs, name)
		a.watches.track(ctx, name, nil)
	}
	if item != nil && !a.released[item.UID] {
		err := a.hub.removeFinalizer(ctx, item.Name, item.UID)
		if code := hubCode(err); err != nil && code != http.StatusNotFound && code != http.StatusConflict {
			return err
		}
		a.released[item.UID] = true
		a.log.Info("work removed", "work", name)
	}
	delete(a.states, name)
	return nil
}

// status builds the work's status from this sync's outcome, keeping the
// transition times of conditions that did not change.
func (a *Agent) status(item *agentapi.WorkItem, st *workState, mfs []*manifest, results []*applied, errs []error, now time.Time) *fleetv1.ManifestWorkStatus {
	out := &fleetv1.ManifestWorkStatus{ObservedGeneration: item.Generation, LastDriftTime: st.lastDrift}
	var prev *fleetv1.ManifestWorkStatus
	if st.prev != nil {
		prev = st.prev.DeepCopy()
		out.Conditions = prev.Conditions
	}
	gen := item.Generation
	var notApplied, unavailable, drifted []string
	unknown := 0
	for i, mf := range mfs {
		mc := fleetv1.ManifestCondition{ResourceMeta: fleetv1.ManifestResourceMeta{
			Ordinal: int32(i), Group: mf.id.Group, Version: mf.id.Version, Kind: mf.id.Kind, Resource: mf.id.Resource,
			Name: mf.id.Name, Namespace: mf.id.Namespace,
		}}
		if prev != nil && i < len(prev.Manifests) && prev.Manifests[i].ResourceMeta == mc.ResourceMeta {
			mc.Conditions = prev.Manifests[i].Conditions
		}
		if err := errs[i]; err != nil {
			reason := ReasonApplyFailed
			switch {
			case apierrors.IsConflict(err):
				reason = ReasonApplyConflict
			case apierrors.IsNotFound(err) && mf.strategy.Type == fleetv1.UpdateReadOnly:
				reason = ReasonNotFound
			}
			setCondition(&mc.Conditions, fleetv1.WorkApplied, metav1.ConditionFalse, reason, err.Error(), gen, now)
			setCondition(&mc.Conditions, fleetv1.WorkAvailable, metav1.ConditionUnknown, ReasonNotApplied, "not applied", gen, now)
			setCondition(&mc.Conditions, fleetv1.WorkDegraded, metav1.ConditionTrue, reason, err.Error(), gen, now)
			notApplied = append(notApplied, fmt.Sprintf("%s: %v", describe(mf), err))
			unknown++
			out.Manifests = append(out.Manifests, mc)
			continue
		}
		obj := results[i].after
		reason, msg := ReasonApplied, "applied"
		switch mf.strategy.Type {
		case fleetv1.UpdateReadOnly:
			reason, msg = ReasonReadOnly, "read only"
		case fleetv1.UpdateCreateOnly:
			reason, msg = ReasonCreateOnly, "created once, then left alone"
		}
		if at, ok := st.drift[i]; ok {
			reason, msg = ReasonDriftCorrected, "changed on the cluster; applied again at "+at.UTC().Format(time.RFC3339)
			drifted = append(drifted, describe(mf))
		}
		setCondition(&mc.Conditions, fleetv1.WorkApplied, metav1.ConditionTrue, reason, msg, gen, now)
		ok, why := available(obj)
		if ok {
			setCondition(&mc.Conditions, fleetv1.WorkAvailable, metav1.ConditionTrue, ReasonAvailable, why, gen, now)
			setCondition(&mc.Conditions, fleetv1.WorkDegraded, metav1.ConditionFalse, ReasonAsExpected, "", gen, now)
		} else {
			setCondition(&mc.Conditions, fleetv1.WorkAvailable, metav1.ConditionFalse, ReasonNotAvailable, why, gen, now)
			setCondition(&mc.Conditions, fleetv1.WorkDegraded, metav1.ConditionTrue, ReasonUnavailable, why, gen, now)
			unavailable = append(unavailable, describe(mf)+": "+why)
		}
		fb, err := feedback(obj, mf.rules)
		if err != nil {
			a.log.Warn("status feedback", "work", item.Name, "object", mf.id.String(), "err", err)
		}
		mc.StatusFeedback = fb
		out.Manifests = append(out.Manifests, mc)
	}

	n := len(mfs)
	switch {
	case len(notApplied) > 0:
		setCondition(&out.Conditions, fleetv1.WorkApplied, metav1.ConditionFalse, ReasonApplyFailed,
			fmt.Sprintf("%d of %d objects not applied: %s", len(notApplied), n, strings.Join(notApplied, "; ")), gen, now)
	case len(drifted) > 0:
		setCondition(&out.Conditions, fleetv1.WorkApplied, metav1.ConditionTrue, ReasonDriftCorrected,
			"changed on the cluster and applied again: "+strings.Join(drifted, ", "), gen, now)
	default:
		setCondition(&out.Conditions, fleetv1.WorkApplied, metav1.ConditionTrue, ReasonApplied, fmt.Sprintf("%d objects applied", n), gen, now)
	}
	switch {
	case len(unavailable) > 0:
		setCondition(&out.Conditions, fleetv1.WorkAvailable, metav1.ConditionFalse, ReasonNotAvailable, strings.Join(unavailable, "; "), gen, now)
	case unknown > 0:
		setCondition(&out.Conditions, fleetv1.WorkAvailable, metav1.ConditionUnknown, ReasonNotApplied, fmt.Sprintf("%d of %d objects not applied", unknown, n), gen, now)
	default:
		setCondition(&out.Conditions, fleetv1.WorkAvailable, metav1.ConditionTrue, ReasonAvailable, fmt.Sprintf("%d objects available", n), gen, now)
	}
	switch {
	case len(notApplied) > 0:
		setCondition(&out.Conditions, fleetv1.WorkDegraded, metav1.ConditionTrue, ReasonApplyFailed, strings.Join(notApplied, "; "), gen, now)
	case len(unavailable) > 0:
		setCondition(&out.Conditions, fleetv1.WorkDegraded, metav1.ConditionTrue, ReasonUnavailable, strings.Join(unavailable, "; "), gen, now)
	default:
		setCondition(&out.Conditions, fleetv1.WorkDegraded, metav1.ConditionFalse, ReasonAsExpected, "", gen, now)
	}
	// Progressing: the generation is not yet applied whole, or applied but
	// not yet available; done once every object is both.
	switch {
	case len(notApplied) > 0:
		setCondition(&out.Conditions, fleetv1.WorkProgressing, metav1.ConditionTrue, ReasonApplying,
			fmt.Sprintf("generation %d: %d of %d objects not applied yet", gen, len(notApplied), n), gen, now)
	case len(unavailable) > 0:
		setCondition(&out.Conditions, fleetv1.WorkProgressing, metav1.ConditionTrue, ReasonWaitingForAvailable,
			fmt.Sprintf("generation %d applied; waiting for %s", gen, strings.Join(unavailable, "; ")), gen, now)
	default:
		setCondition(&out.Conditions, fleetv1.WorkProgressing, metav1.ConditionFalse, ReasonCompleted,
			fmt.Sprintf("generation %d applied and available", gen), gen, now)
	}
	return out
}

func describe(mf *manifest) string {
	if mf.id.Name == "" {
		return fmt.Sprintf("manifest %d", mf.ordinal)
	}
	if mf.id.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", mf.id.Kind, mf.id.Namespace, mf.id.Name)
	}
	return mf.id.Kind + " " + mf.id.Name
}

func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}
