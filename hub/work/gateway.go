package work

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
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

// Finalizer holds a deleted ManifestWork until its agent has removed (or
// orphaned) what the work applied.
const Finalizer = "work.fleetpulse.io/cleanup"

// maxStatusBody bounds a status report.
const maxStatusBody = 1 << 20

// Gateway serves the agents' work endpoints.
type Gateway struct {
	cache   client.Reader // ManifestWorks, as the manager's informers hold them
	writer  client.Client // writes go to the apiserver
	api     client.Reader // uncached reads, after a conflict
	logger  *slog.Logger
	poll    *longpoll.Poll[*workList]
	stopped chan struct{}

	requests *prometheus.CounterVec
}

type workList agentapi.WorkList

func (l *workList) Version() string { return l.ResourceVersion }

// Setup adds work distribution to the hub: ManifestWork to the manager's
// cache with a handler that wakes long polls, the finalizer controller, and
// the work endpoints on the agents' gateway. reg may be nil.
func Setup(mgr manager.Manager, agents *gateway.Gateway, logger *slog.Logger, reg prometheus.Registerer) error {
	g, err := NewGateway(mgr, logger, reg)
	if err != nil {
		return err
	}
	if err := setupFinalizer(mgr, logger); err != nil {
		return err
	}
	g.Routes(agents)
	return nil
}

// NewGateway builds the gateway over mgr's cache; it starts nothing (the
// manager does).
func NewGateway(mgr manager.Manager, logger *slog.Logger, reg prometheus.Registerer) (*Gateway, error) {
	g := newGateway(mgr.GetCache(), mgr.GetClient(), mgr.GetAPIReader(), logger, reg)
	// Asking for the informer before the manager starts adds ManifestWork
	// to the cache; the manager starts it and waits for it with the others.
	inf, err := mgr.GetCache().GetInformer(context.Background(), &fleetv1.ManifestWork{})
	if err != nil {
		return nil, fmt.Errorf("ManifestWork informer: %w", err)
	}
	notify := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if mw, ok := obj.(*fleetv1.ManifestWork); ok {
			g.poll.Wake.Notify(mw.Namespace)
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    notify,
		UpdateFunc: func(_, obj any) { notify(obj) },
		DeleteFunc: notify,
	}); err != nil {
		return nil, fmt.Errorf("ManifestWork event handler: %w", err)
	}
	// Waiting polls answer when the hub stops, so that its server's
	// shutdown does not wait for their timeouts.
	if err := mgr.Add(controlplane.EveryReplica(func(ctx context.Context) error {
		<-ctx.Done()
		close(g.stopped)
		return nil
	})); err != nil {
		return nil, err
	}
	return g, nil
}

// newGateway builds the gateway over its readers and writer; reg may be nil.
func newGateway(cache client.Reader, writer client.Client, api client.Reader, logger *slog.Logger, reg prometheus.Registerer) *Gateway {
	g := &Gateway{
		cache: cache, writer: writer, api: api, logger: logger, stopped: make(chan struct{}),
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_work_requests_total", Help: "Agents' work requests by endpoint and result.",
		}, []string{"endpoint", "result"}),
	}
	g.poll = &longpoll.Poll[*workList]{
		Wake: longpoll.NewBroadcaster(), List: g.list, Stopped: g.stopped,
		Waiting: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
			Name: "fleetpulse_hub_work_polls_waiting", Help: "Agents' work list polls waiting for a change.",
		}),
	}
	return g
}

// Routes adds the work endpoints to the agents' gateway, which
// authenticates their callers.
func (g *Gateway) Routes(agents *gateway.Gateway) {
	agents.HandleFunc("GET "+agentapi.PathWorks, g.serveList)
	agents.HandleFunc("PUT "+agentapi.PathWorks+"/{name}/status", g.serveStatus)
	agents.HandleFunc("DELETE "+agentapi.PathWorks+"/{name}/finalizer", g.serveFinalizer)
}

// caller is the calling cluster, which may only name its own namespace.
func (g *Gateway) caller(w http.ResponseWriter, r *http.Request, endpoint string) (string, bool) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		g.count(endpoint, "refused")
		return "", false
	}
	cluster := id.Cluster
	if ns := r.URL.Query().Get(agentapi.ParamNamespace); ns != "" && ns != cluster {
		g.count(endpoint, "forbidden")
		http.Error(w, fmt.Sprintf("cluster %q may only use the works of its own namespace %q, not %q", cluster, cluster, ns), http.StatusForbidden)
		return "", false
	}
	return cluster, true
}

func (g *Gateway) serveList(w http.ResponseWriter, r *http.Request) {
	cluster, ok := g.caller(w, r, "list")
	if !ok {
		return
	}
	res, err := g.poll.Serve(w, r, cluster)
	if err != nil {
		g.logger.ErrorContext(r.Context(), "list ManifestWorks of "+cluster, "err", err)
	}
	g.count("list", string(res))
}

// list reads the cluster's works from the cache: those carrying the
// finalizer, so that none is applied whose deletion the hub would not wait
// for.
func (g *Gateway) list(ctx context.Context, cluster string) (*workList, error) {
	var works fleetv1.ManifestWorkList
	if err := g.cache.List(ctx, &works, client.InNamespace(cluster)); err != nil {
		return nil, err
	}
	out := &workList{Items: []agentapi.WorkItem{}}
	for i := range works.Items {
		mw := &works.Items[i]
		if !controllerutil.ContainsFinalizer(mw, Finalizer) {
			continue
		}
		st := mw.Status.DeepCopy()
		out.Items = append(out.Items, agentapi.WorkItem{
			Name: mw.Name, UID: string(mw.UID), Generation: mw.Generation, Spec: *mw.Spec.DeepCopy(),
			Deleting: mw.DeletionTimestamp != nil, Status: st,
		})
	}
	slices.SortFunc(out.Items, func(a, b agentapi.WorkItem) int { return strings.Compare(a.Name, b.Name) })
	out.ResourceVersion = listVersion(out.Items)
	return out, nil
}

// listVersion names what the agent acts on: each work's name, UID,
// generation and deletion. Status writes and metadata changes leave it as
// it is, so an agent's own status report does not wake its poll.
func listVersion(items []agentapi.WorkItem) string {
	h := sha256.New()
	var n [8]byte
	for _, it := range items {
		h.Write([]byte(it.Name))
		h.Write([]byte{0})
		h.Write([]byte(it.UID))
		h.Write([]byte{0})
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
	cluster, ok := g.caller(w, r, "status")
	if !ok {
		return
	}
	name := r.PathValue("name")
	var req agentapi.WorkStatusRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxStatusBody))
	if err := dec.Decode(&req); err != nil {
		g.count("status", "invalid")
		http.Error(w, "decode the status report: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	mw := &fleetv1.ManifestWork{}
	if err := g.cache.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, mw); err != nil {
		g.notFoundOrError(w, r, "status", cluster, name, err)
		return
	}
	for attempt := 0; ; attempt++ {
		if req.UID != "" && req.UID != string(mw.UID) {
			g.count("status", "conflict")
			http.Error(w, fmt.Sprintf("work %s/%s is now another object (uid %s, not %s): list again", cluster, name, mw.UID, req.UID), http.StatusConflict)
			return
		}
		if sameStatus(mw.Status, req.Status) {
			g.count("status", "unchanged")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		mw = mw.DeepCopy()
		mw.Status = req.Status
		err := g.writer.Status().Update(ctx, mw)
		if err == nil {
			g.count("status", "written")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		switch {
		case apierrors.IsConflict(err) && attempt == 0:
			// The cache was behind: read the work again and retry once.
			mw = &fleetv1.ManifestWork{}
			if err := g.api.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, mw); err != nil {
				g.notFoundOrError(w, r, "status", cluster, name, err)
				return
			}
			continue
		case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
			g.count("status", "invalid")
			http.Error(w, "the status is invalid: "+err.Error(), http.StatusBadRequest)
			return
		case apierrors.IsNotFound(err):
			g.notFoundOrError(w, r, "status", cluster, name, err)
			return
		}
		g.serverError(w, r, "status", fmt.Sprintf("write the status of ManifestWork %s/%s", cluster, name), err)
		return
	}
}

// sameStatus compares statuses as they travel: as JSON, where times keep
// whole seconds.
func sameStatus(a, b fleetv1.ManifestWorkStatus) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

func (g *Gateway) serveFinalizer(w http.ResponseWriter, r *http.Request) {
	cluster, ok := g.caller(w, r, "finalizer")
	if !ok {
		return
	}
	name, uid := r.PathValue("name"), r.URL.Query().Get(agentapi.ParamUID)
	ctx := r.Context()
	for attempt := 0; ; attempt++ {
		mw := &fleetv1.ManifestWork{}
		var err error
		if attempt == 0 {
			err = g.cache.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, mw)
		} else {
			err = g.api.Get(ctx, client.ObjectKey{Namespace: cluster, Name: name}, mw)
		}
		switch {
		case apierrors.IsNotFound(err):
			g.count("finalizer", "gone")
			w.WriteHeader(http.StatusNoContent)
			return
		case err != nil:
			g.serverError(w, r, "finalizer", fmt.Sprintf("get ManifestWork %s/%s", cluster, name), err)
			return
		case uid != "" && uid != string(mw.UID):
			g.count("finalizer", "conflict")
			http.Error(w, fmt.Sprintf("work %s/%s is now another object (uid %s, not %s)", cluster, name, mw.UID, uid), http.StatusConflict)
			return
		case mw.DeletionTimestamp == nil:
			g.count("finalizer", "conflict")
			http.Error(w, fmt.Sprintf("work %s/%s is not being deleted", cluster, name), http.StatusConflict)
			return
		case !controllerutil.ContainsFinalizer(mw, Finalizer):
			g.count("finalizer", "gone")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		orig := mw.DeepCopy()
		controllerutil.RemoveFinalizer(mw, Finalizer)
		err = g.writer.Patch(ctx, mw, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
		switch {
		case err == nil || apierrors.IsNotFound(err):
			g.count("finalizer", "removed")
			g.logger.InfoContext(ctx, "work cleaned up by its agent", "cluster", cluster, "work", name)
			w.WriteHeader(http.StatusNoContent)
			return
		case apierrors.IsConflict(err) && attempt == 0:
			continue
		}
		g.serverError(w, r, "finalizer", fmt.Sprintf("remove the finalizer of ManifestWork %s/%s", cluster, name), err)
		return
	}
}

func (g *Gateway) notFoundOrError(w http.ResponseWriter, r *http.Request, endpoint, cluster, name string, err error) {
	if apierrors.IsNotFound(err) {
		g.count(endpoint, "not_found")
		http.Error(w, fmt.Sprintf("cluster %s has no work %q", cluster, name), http.StatusNotFound)
		return
	}
	g.serverError(w, r, endpoint, fmt.Sprintf("get ManifestWork %s/%s", cluster, name), err)
}

func (g *Gateway) serverError(w http.ResponseWriter, r *http.Request, endpoint, what string, err error) {
	g.count(endpoint, "error")
	g.logger.ErrorContext(r.Context(), what, "err", err)
	w.Header().Set("Retry-After", "2")
	http.Error(w, what+" failed; retry", http.StatusServiceUnavailable)
}

func (g *Gateway) count(endpoint, result string) { g.requests.WithLabelValues(endpoint, result).Inc() }
