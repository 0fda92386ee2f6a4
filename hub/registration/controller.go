package registration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	cpv1 "github.com/fleetpulse/fleetpulse/api/clusterinventory/v1alpha1"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/internal/conflict"
)

const (
	finalizer = "fleetpulse.io/registration"
	leaseName = "fleetpulse-agent"
	// managerName is the ClusterProfile's cluster manager.
	managerName = "fleetpulse"
)

// period is a cluster's heartbeat period.
func period(mc *fleetv1.ManagedCluster) time.Duration {
	if mc.Spec.HeartbeatPeriodSeconds <= 0 {
		return 30 * time.Second
	}
	return time.Duration(mc.Spec.HeartbeatPeriodSeconds) * time.Second
}

// Reconcile drives one ManagedCluster to what acceptance, its heartbeats and
// its telemetry say, level-triggered: every pass recomputes the whole status
// and writes only what differs.
func (s *Service) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return conflict.Quiet(s.reconcile)(ctx, req)
}

func (s *Service) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &fleetv1.ManagedCluster{}
	if err := s.cache.Get(ctx, req.NamespacedName, mc); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// The cache may not hold a cluster created a moment ago whose
		// first heartbeat woke us: only the apiserver can say it is gone.
		if err := s.reader.Get(ctx, req.NamespacedName, mc); err == nil {
			return ctrl.Result{RequeueAfter: time.Second}, nil
		} else if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		// Also reached when a finalizer was removed by hand.
		s.tracker.forget(req.Name)
		s.notifyDeregistered(req.Name)
		return ctrl.Result{}, nil
	}
	if mc.DeletionTimestamp != nil {
		return ctrl.Result{}, s.deregister(ctx, mc)
	}
	approval, approved := takeRekeyApproval(mc)
	if controllerutil.AddFinalizer(mc, finalizer) || approved {
		if err := s.writer.Update(ctx, mc); err != nil {
			return ctrl.Result{}, fmt.Errorf("update ManagedCluster %q: %w", mc.Name, err)
		}
	}
	if approved {
		s.record(ctx, slog.LevelInfo, approval)
	}
	now := s.now()
	status := mc.Status.DeepCopy()
	status.ObservedGeneration = mc.Generation
	if !mc.Spec.Accepted {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: fleetv1.ConditionJoined, Status: metav1.ConditionFalse,
			Reason: fleetv1.ReasonPendingAcceptance, Message: "the cluster registered and waits for acceptance", ObservedGeneration: mc.Generation})
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: fleetv1.ConditionAvailable, Status: metav1.ConditionUnknown,
			Reason: fleetv1.ReasonPendingAcceptance, Message: "not accepted", ObservedGeneration: mc.Generation})
		return ctrl.Result{}, s.writeStatus(ctx, mc, status)
	}
	if err := s.ensureNamespace(ctx, mc); err != nil {
		return ctrl.Result{}, err
	}
	grace := s.grace(mc)
	b, seen := s.tracker.get(mc.Name)
	if !seen {
		if at, ok := s.leaseTime(ctx, mc.Name); ok {
			s.tracker.seed(mc.Name, s.seedTime(mc, at), grace)
			b, seen = s.tracker.get(mc.Name)
		}
	}
	avail, taints, fresh := availability(mc, b, seen, grace, now)
	meta.SetStatusCondition(&status.Conditions, avail)
	joined := metav1.Condition{Type: fleetv1.ConditionJoined, Status: metav1.ConditionFalse, Reason: "WaitingForAgent",
		Message: "accepted; waiting for the agent's first heartbeat", ObservedGeneration: mc.Generation}
	if seen {
		joined.Status, joined.Reason, joined.Message = metav1.ConditionTrue, fleetv1.ReasonAccepted, "accepted, and the agent holds its certificate"
	}
	meta.SetStatusCondition(&status.Conditions, joined)
	if seen && !b.seeded {
		status.AgentVersion = b.AgentVersion
		status.ClusterClaims = claimsOf(b)
	}
	if inv, ok := s.inventory.get(mc.Name); ok {
		inv.apply(status)
	}
	if seen && (status.LastHeartbeatTime == nil || !sameStatus(&mc.Status, status) || now.Sub(status.LastHeartbeatTime.Time) >= s.cfg.RefreshInterval) {
		status.LastHeartbeatTime = &metav1.Time{Time: b.At.Truncate(time.Second)}
	}

	if !sameTaints(mc.Spec.Taints, taints) {
		mc.Spec.Taints = taints
		if err := s.writer.Update(ctx, mc); err != nil {
			return ctrl.Result{}, fmt.Errorf("update taints: %w", err)
		}
		s.logger.Info("cluster taints changed", "cluster", mc.Name, "available", avail.Status, "reason", avail.Reason)
	}
	if err := s.writeStatus(ctx, mc, status); err != nil {
		return ctrl.Result{}, err
	}
	if fresh && !b.seeded {
		if err := s.renewLease(ctx, mc.Name, b.At, grace); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := s.syncProfile(ctx, mc, status); err != nil {
		return ctrl.Result{}, err
	}
	// Come back for the next refresh. Heartbeats and inventory that change
	// anything wake the controller sooner, and a loss is the availability
	// workers' (watchLoss).
	next := s.cfg.RefreshInterval
	if s.resync > 0 {
		next = s.resync
	}
	if status.LastHeartbeatTime != nil {
		if due := status.LastHeartbeatTime.Add(s.cfg.RefreshInterval).Sub(now); due > 0 {
			next = min(next, due+time.Second)
		}
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// grace is how long a cluster may stay silent before it goes Unknown.
func (s *Service) grace(mc *fleetv1.ManagedCluster) time.Duration {
	return time.Duration(s.cfg.GracePeriods) * period(mc)
}

func (s *Service) writeStatus(ctx context.Context, mc *fleetv1.ManagedCluster, status *fleetv1.ManagedClusterStatus) error {
	if equality.Semantic.DeepEqual(&mc.Status, status) {
		return nil
	}
	mc.Status = *status
	if err := s.writer.Status().Update(ctx, mc); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// sameStatus compares what matters to readers, ignoring the heartbeat time.
func sameStatus(a, b *fleetv1.ManagedClusterStatus) bool {
	x, y := a.DeepCopy(), b.DeepCopy()
	x.LastHeartbeatTime, y.LastHeartbeatTime = nil, nil
	return equality.Semantic.DeepEqual(x, y)
}

func (s *Service) ensureNamespace(ctx context.Context, mc *fleetv1.ManagedCluster) error {
	ns := &corev1.Namespace{}
	err := s.cache.Get(ctx, client.ObjectKey{Name: mc.Name}, ns)
	if err == nil || !apierrors.IsNotFound(err) {
		return err
	}
	ns = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: mc.Name, Labels: map[string]string{fleetv1.LabelCluster: mc.Name}}}
	if err := s.writer.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", mc.Name, err)
	}
	return nil
}

// leaseTime reads the cluster's Lease: after a hub restart it says when the
// last heartbeat was, so clusters neither flap Unknown nor look alive forever.
func (s *Service) leaseTime(ctx context.Context, name string) (time.Time, bool) {
	l := &coordinationv1.Lease{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: name, Name: leaseName}, l); err != nil || l.Spec.RenewTime == nil {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Time, true
}

// seedTime is the heartbeat time a hub that has not heard from a cluster
// yet starts from: its Lease's, or, for a cluster the hub last wrote
// Available, the time this hub began tracking heartbeats if that is later.
// The Lease is renewed only once per refresh, so it may be older than the
// grace while the cluster heartbeats; the hub cannot tell a silence from
// its own absence, so a cluster that was Available gets a grace from the
// hub's start to heartbeat, and goes Unknown after it if it does not.
func (s *Service) seedTime(mc *fleetv1.ManagedCluster, lease time.Time) time.Time {
	if c := meta.FindStatusCondition(mc.Status.Conditions, fleetv1.ConditionAvailable); c != nil && c.Status == metav1.ConditionTrue {
		if start := s.trackingSince(); start.After(lease) {
			return start
		}
	}
	return lease
}

// renewLease writes the heartbeat time into the Lease at most once per
// refresh: heartbeats themselves stay in memory.
func (s *Service) renewLease(ctx context.Context, name string, at time.Time, grace time.Duration) error {
	l := &coordinationv1.Lease{}
	err := s.cache.Get(ctx, client.ObjectKey{Namespace: name, Name: leaseName}, l)
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: leaseName},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(name), LeaseDurationSeconds: ptr.To(s.leaseSeconds(grace)),
				RenewTime: &metav1.MicroTime{Time: at}},
		}
		if err := s.writer.Create(ctx, l); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create lease of %s: %w", name, err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if l.Spec.RenewTime != nil && at.Sub(l.Spec.RenewTime.Time) < s.cfg.RefreshInterval && ptr.Deref(l.Spec.LeaseDurationSeconds, 0) == s.leaseSeconds(grace) {
		return nil
	}
	l.Spec.RenewTime = &metav1.MicroTime{Time: at}
	l.Spec.LeaseDurationSeconds = ptr.To(s.leaseSeconds(grace))
	if err := s.writer.Update(ctx, l); err != nil {
		if apierrors.IsConflict(err) {
			// The Lease was renewed since the cache saw it, typically by
			// this controller a moment ago: a status write of the same
			// pass queues the cluster again before the Lease's watch event
			// arrives. The next pass renews from the newer version.
			return nil
		}
		return fmt.Errorf("renew lease of %s: %w", name, err)
	}
	s.leaseWrites.Inc()
	return nil
}

// leaseSeconds is how long a Lease holds: a refresh, and the grace after
// it, so that a reader of the Lease alone sees the cluster go when the hub
// would mark it Unknown at the latest.
func (s *Service) leaseSeconds(grace time.Duration) int32 {
	return int32((s.cfg.RefreshInterval + grace).Seconds())
}

// deregister removes what the hub made for the cluster and lets it go. Its
// certificates are refused from the moment it is being deleted.
func (s *Service) deregister(ctx context.Context, mc *fleetv1.ManagedCluster) error {
	if !controllerutil.ContainsFinalizer(mc, finalizer) {
		return nil
	}
	profile := &cpv1.ClusterProfile{ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: mc.Name}}
	if err := s.writer.Delete(ctx, profile); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete cluster profile: %w", err)
	}
	ns := &corev1.Namespace{}
	if err := s.cache.Get(ctx, client.ObjectKey{Name: mc.Name}, ns); err == nil && ns.Labels[fleetv1.LabelCluster] == mc.Name {
		if err := s.writer.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete namespace %s: %w", mc.Name, err)
		}
	}
	s.tracker.forget(mc.Name)
	controllerutil.RemoveFinalizer(mc, finalizer)
	if err := s.writer.Update(ctx, mc); err != nil {
		return fmt.Errorf("remove finalizer: %w", err)
	}
	s.logger.Info("cluster deregistered", "cluster", mc.Name)
	s.notifyDeregistered(mc.Name)
	return nil
}

// takeRekeyApproval takes an administrator's approval of a re-key (fleetpulse
// hub accept --rekey records it on the ManagedCluster) off mc, to be audited
// once mc is written. A record that cannot be read is taken all the same:
// the approval itself, the new key, is already in place.
func takeRekeyApproval(mc *fleetv1.ManagedCluster) (audit, bool) {
	raw, ok := mc.Annotations[AnnotationRekeyApproved]
	if !ok {
		return audit{}, false
	}
	var ap RekeyApproval
	a := audit{event: eventRekey, outcome: outcomeApproved, cluster: mc.Name, keySHA256: mc.Annotations[AnnotationKeySHA256]}
	if err := json.Unmarshal([]byte(raw), &ap); err == nil {
		a.tokenID, a.source = ap.TokenID, ap.Source
		a.reason = fmt.Sprintf("approved at %s; requested at %s; previous key %s", ap.ApprovedAt.Format(time.RFC3339),
			ap.RequestedAt.Format(time.RFC3339), ap.PreviousKeySHA256)
	} else {
		a.reason = fmt.Sprintf("unreadable approval record: %v", err)
	}
	delete(mc.Annotations, AnnotationRekeyApproved)
	return a, true
}

// syncProfile publishes the cluster as a SIG-Multicluster ClusterProfile.
func (s *Service) syncProfile(ctx context.Context, mc *fleetv1.ManagedCluster, status *fleetv1.ManagedClusterStatus) error {
	p := &cpv1.ClusterProfile{}
	err := s.cache.Get(ctx, client.ObjectKey{Namespace: s.cfg.Namespace, Name: mc.Name}, p)
	if apierrors.IsNotFound(err) {
		p = &cpv1.ClusterProfile{
			ObjectMeta: metav1.ObjectMeta{Namespace: s.cfg.Namespace, Name: mc.Name, Labels: map[string]string{cpv1.LabelClusterManager: managerName}},
			Spec:       cpv1.ClusterProfileSpec{DisplayName: mc.Name, ClusterManager: cpv1.ClusterManager{Name: managerName}},
		}
		if set := mc.Labels[fleetv1.LabelClusterSet]; set != "" {
			p.Labels[cpv1.LabelClusterSet] = set
		}
		if err := s.writer.Create(ctx, p); err != nil {
			return fmt.Errorf("create cluster profile: %w", err)
		}
	} else if err != nil {
		return err
	}
	want := p.Status.DeepCopy()
	want.Version.Kubernetes = status.Version.Kubernetes
	for _, t := range []string{fleetv1.ConditionJoined, fleetv1.ConditionAvailable} {
		c := meta.FindStatusCondition(status.Conditions, t)
		if c == nil {
			continue
		}
		typ := cpv1.ConditionJoined
		if t == fleetv1.ConditionAvailable {
			typ = cpv1.ConditionControlPlaneHealthy
		}
		meta.SetStatusCondition(&want.Conditions, metav1.Condition{Type: typ, Status: c.Status, Reason: c.Reason, Message: c.Message})
	}
	want.Properties = profileProperties(p.Status.Properties, status, s.now())
	if equality.Semantic.DeepEqual(&p.Status, want) {
		return nil
	}
	p.Status = *want
	if err := s.writer.Status().Update(ctx, p); err != nil {
		return fmt.Errorf("update cluster profile status: %w", err)
	}
	return nil
}

// profileProperties lists the cluster's claims and inventory as properties,
// keeping each one's observation time while its value holds.
func profileProperties(old []cpv1.Property, st *fleetv1.ManagedClusterStatus, observed time.Time) []cpv1.Property {
	vals := map[string]string{}
	for _, c := range st.ClusterClaims {
		vals[c.Name] = c.Value
	}
	if st.Platform != "" {
		vals["platform.fleetpulse.io"] = st.Platform
	}
	vals["nodes.fleetpulse.io/total"] = fmt.Sprint(st.Nodes.Total)
	vals["nodes.fleetpulse.io/ready"] = fmt.Sprint(st.Nodes.Ready)
	for name, q := range st.Allocatable {
		vals["allocatable.fleetpulse.io/"+string(name)] = q.String()
	}
	prev := map[string]cpv1.Property{}
	for _, p := range old {
		prev[p.Name] = p
	}
	now := metav1.NewTime(observed.Truncate(time.Second))
	out := make([]cpv1.Property, 0, len(vals))
	for name, v := range vals {
		if p, ok := prev[name]; ok && p.Value == v {
			out = append(out, p)
			continue
		}
		out = append(out, cpv1.Property{Name: name, Value: v, LastObservedTime: now})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func claimsOf(b beat) []fleetv1.ClusterClaim {
	out := make([]fleetv1.ClusterClaim, 0, len(b.Claims))
	seen := map[string]bool{}
	for _, c := range b.Claims {
		if c.Name == "" || seen[c.Name] || len(out) >= 32 {
			continue
		}
		seen[c.Name] = true
		out = append(out, fleetv1.ClusterClaim{Name: truncate(c.Name, 253), Value: truncate(c.Value, 1024)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func withoutManagedTaints(ts []fleetv1.Taint) []fleetv1.Taint {
	out := make([]fleetv1.Taint, 0, len(ts)+1)
	for _, t := range ts {
		if t.Key != fleetv1.TaintUnreachable && t.Key != fleetv1.TaintUnavailable {
			out = append(out, t)
		}
	}
	return out
}

// managedTaint keeps an existing taint's time added, so tolerationSeconds
// count from when the trouble began.
func managedTaint(existing []fleetv1.Taint, key string, now time.Time) fleetv1.Taint {
	for _, t := range existing {
		if t.Key == key && t.Effect == fleetv1.TaintNoSelect {
			return t
		}
	}
	return fleetv1.Taint{Key: key, Effect: fleetv1.TaintNoSelect, TimeAdded: metav1.NewTime(now.Truncate(time.Second))}
}

func sameTaints(a, b []fleetv1.Taint) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Key != b[i].Key || a[i].Effect != b[i].Effect || a[i].Value != b[i].Value || !a[i].TimeAdded.Equal(&b[i].TimeAdded) {
			return false
		}
	}
	return true
}
