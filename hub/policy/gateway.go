package policy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/fleetpulse/fleetpulse/api/agentapi"
	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
	"github.com/fleetpulse/fleetpulse/hub/controlplane"
	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/internal/longpoll"
)

// maxStatusBody bounds a status report: ten templates' diffs fit many times.
const maxStatusBody = 1 << 20

// Gateway serves each cluster's policy replicas to its agent, writes the
// status the agent reports, and lets a pruned replica go.
type Gateway struct {
	cache    client.Reader // Policies, as the manager's informers hold them
	writer   client.Client
	api      client.Reader // uncached reads, after a conflict
	logger   *slog.Logger
	poll     *longpoll.Poll[*policyList]
	requests *prometheus.CounterVec
}

// SetupGateway adds the agents' policy endpoints to the agents' gateway,
// which authenticates their callers.
func SetupGateway(mgr manager.Manager, agents *gateway.Gateway, logger *slog.Logger, reg prometheus.Registerer) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	stopped := make(chan struct{})
	g := &Gateway{
		cache: mgr.GetCache(), writer: mgr.GetClient(), api: mgr.GetAPIReader(), logger: logger,
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_policy_requests_total", Help: "Agents' policy requests by endpoint and result.",
		}, []string{"endpoint", "result"}),
	}
	g.poll = &longpoll.Poll[*policyList]{
		Wake: longpoll.NewBroadcaster(), List: g.list, Stopped: stopped,
		Waiting: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "fleetpulse_hub_policy_polls_waiting", Help: "Agents' policy list polls waiting for a change.",
		}),
	}
	inf, err := mgr.GetCache().GetInformer(context.Background(), &fleetv1.Policy{})
	if err != nil {
		return fmt.Errorf("policy informer: %w", err)
	}
	notify := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if p, ok := obj.(*fleetv1.Policy); ok && p.Labels[fleetv1.LabelRootPolicy] != "" {
			g.poll.Wake.Notify(p.Namespace)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: notify, UpdateFunc: func(_, obj any) { notify(obj) }, DeleteFunc: notify,
	}); err != nil {
		return fmt.Errorf("policy event handler: %w", err)
	}
	if err := mgr.Add(controlplane.EveryReplica(func(ctx context.Context) error {
		<-ctx.Done()
		close(stopped)
		return nil
	})); err != nil {
		return err
	}
	agents.HandleFunc("GET "+agentapi.PathPolicies, g.serveList)
	agents.HandleFunc("PUT "+agentapi.PathPolicies+"/{name}/status", g.serveStatus)
	agents.HandleFunc("DELETE "+agentapi.PathPolicies+"/{name}/finalizer", g.serveFinalizer)
	return nil
}

type policyList agentapi.PolicyList

func (l *policyList) Version() string { return l.ResourceVersion }

func (g *Gateway) serveList(w http.ResponseWriter, r *http.Request) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		g.count("list", "refused")
		return
	}
	cluster := id.Cluster
	res, err := g.poll.Serve(w, r, cluster)
	if err != nil {
		g.logger.Error("list policy replicas", "cluster", cluster, "err", err)
	}
	g.count("list", string(res))
}

// list reads the cluster's replicas from the cache.
func (g *Gateway) list(ctx context.Context, cluster string) (*policyList, error) {
	var policies fleetv1.PolicyList
	if err := g.cache.List(ctx, &policies, client.InNamespace(cluster), client.HasLabels{fleetv1.LabelRootPolicy}); err != nil {
		return nil, err
	}
	out := &policyList{Items: []agentapi.PolicyItem{}}
	for i := range policies.Items {
		p := &policies.Items[i]
		ns, name, _ := splitRootKey(p.Labels[fleetv1.LabelRootPolicy])
		out.Items = append(out.Items, agentapi.PolicyItem{
			Name: p.Name, UID: string(p.UID), Generation: p.Generation, RootNamespace: ns, RootName: name,
			Annotations: p.Annotations, Spec: *p.Spec.DeepCopy(), Deleting: p.DeletionTimestamp != nil, Status: p.Status.DeepCopy(),
		})
	}
	slices.SortFunc(out.Items, func(a, b agentapi.PolicyItem) int { return strings.Compare(a.Name, b.Name) })
	out.ResourceVersion = listVersion(out.Items)
	return out, nil
}

// listVersion names what the agent acts on: each replica's name, UID,
// generation and deletion, not its status, so that the agent's own report
// does not wake its poll.
func listVersion(items []agentapi.PolicyItem) string {
	h := sha256.New()
	var n [8]byte
	for _, it := range items {
		h.Write([]byte(it.Name + "\x00" + it.UID + "\x00"))
		binary.BigEndian.PutUint64(n[:], uint64(it.Generation))
		h.Write(n[:])
		if it.Deleting {
			h.Write([]byte{1})
		} else {
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

func (g *Gateway) serveStatus(w http.ResponseWriter, r *http.Request) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		g.count("status", "refused")
		return
	}
	cluster := id.Cluster
	name := r.PathValue("name")
	var req agentapi.PolicyStatusRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxStatusBody)).Decode(&req); err != nil {
		g.count("status", "invalid")
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, fmt.Sprintf("the status report is over %d bytes", maxStatusBody), http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "decode the status report: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		p := &fleetv1.Policy{}
		var err error
		if attempt == 0 {
			err = g.cache.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, p)
		} else {
			err = g.api.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, p)
		}
		switch {
		case err != nil:
			g.notFoundOrError(w, "status", cluster, name, err)
			return
		case p.Labels[fleetv1.LabelRootPolicy] == "":
			g.count("status", "not_found")
			http.Error(w, fmt.Sprintf("cluster %s has no policy replica %q", cluster, name), http.StatusNotFound)
			return
		case req.UID != "" && req.UID != string(p.UID):
			g.count("status", "conflict")
			http.Error(w, fmt.Sprintf("policy %s/%s is now another object (uid %s, not %s): list again", cluster, name, p.UID, req.UID), http.StatusConflict)
			return
		case sameStatus(p.Status, req.Status):
			g.count("status", "unchanged")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		p = p.DeepCopy()
		p.Status = req.Status
		err = g.writer.Status().Update(ctx, p)
		switch {
		case err == nil:
			g.count("status", "written")
			w.WriteHeader(http.StatusNoContent)
			return
		case apierrors.IsConflict(err) && attempt == 0:
			continue // the cache was behind
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) || apierrors.IsRequestEntityTooLargeError(err):
			g.count("status", "invalid")
			http.Error(w, "the status is invalid: "+err.Error(), http.StatusBadRequest)
			return
		case apierrors.IsNotFound(err):
			g.notFoundOrError(w, "status", cluster, name, err)
			return
		}
		g.serverError(w, "status", fmt.Sprintf("write the status of policy %s/%s", cluster, name), err)
		return
	}
}

// sameStatus compares statuses as they travel: as JSON, where times keep
// whole seconds.
func sameStatus(a, b fleetv1.PolicyStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func (g *Gateway) serveFinalizer(w http.ResponseWriter, r *http.Request) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		g.count("finalizer", "refused")
		return
	}
	cluster := id.Cluster
	name, uid := r.PathValue("name"), r.URL.Query().Get(agentapi.ParamUID)
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		p := &fleetv1.Policy{}
		var err error
		if attempt == 0 {
			err = g.cache.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, p)
		} else {
			err = g.api.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, p)
		}
		switch {
		case apierrors.IsNotFound(err):
			g.count("finalizer", "gone")
			w.WriteHeader(http.StatusNoContent)
			return
		case err != nil:
			g.serverError(w, "finalizer", fmt.Sprintf("get policy %s/%s", cluster, name), err)
			return
		case p.Labels[fleetv1.LabelRootPolicy] == "":
			g.count("finalizer", "not_found")
			http.Error(w, fmt.Sprintf("cluster %s has no policy replica %q", cluster, name), http.StatusNotFound)
			return
		case uid != "" && uid != string(p.UID):
			g.count("finalizer", "conflict")
			http.Error(w, fmt.Sprintf("policy %s/%s is now another object (uid %s, not %s)", cluster, name, p.UID, uid), http.StatusConflict)
			return
		case p.DeletionTimestamp == nil:
			g.count("finalizer", "conflict")
			http.Error(w, fmt.Sprintf("policy %s/%s is not being deleted", cluster, name), http.StatusConflict)
			return
		case !controllerutil.ContainsFinalizer(p, fleetv1.FinalizerPolicyPrune):
			g.count("finalizer", "gone")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		orig := p.DeepCopy()
		controllerutil.RemoveFinalizer(p, fleetv1.FinalizerPolicyPrune)
		err = g.writer.Patch(ctx, p, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil || apierrors.IsNotFound(err):
			g.count("finalizer", "removed")
			g.logger.Info("policy pruned by its agent", "cluster", cluster, "policy", name)
			w.WriteHeader(http.StatusNoContent)
			return
		case apierrors.IsConflict(err) && attempt == 0:
			continue
		}
		g.serverError(w, "finalizer", fmt.Sprintf("remove the finalizer of policy %s/%s", cluster, name), err)
		return
	}
}

func (g *Gateway) notFoundOrError(w http.ResponseWriter, endpoint, cluster, name string, err error) {
	if apierrors.IsNotFound(err) {
		g.count(endpoint, "not_found")
		http.Error(w, fmt.Sprintf("cluster %s has no policy replica %q", cluster, name), http.StatusNotFound)
		return
	}
	g.serverError(w, endpoint, fmt.Sprintf("get policy %s/%s", cluster, name), err)
}

func (g *Gateway) serverError(w http.ResponseWriter, endpoint, what string, err error) {
	g.count(endpoint, "error")
	g.logger.Error(what, "err", err)
	w.Header().Set("Retry-After", "2")
	http.Error(w, what+" failed; retry", http.StatusServiceUnavailable)
}

func (g *Gateway) count(endpoint, result string) { g.requests.WithLabelValues(endpoint, result).Inc() }
