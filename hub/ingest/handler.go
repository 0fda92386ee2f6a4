package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/thanos-io/thanos/pkg/receive"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// Options configure the handler.
type Options struct {
	// MaxRequestBytes bounds a request body (compressed); larger gets 413.
	MaxRequestBytes int64
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
	// Limits are the clusters' ingest limits; nil gives every cluster
	// limits.DefaultLimits, counting head series from the store. The
	// request rate is the gateway's to apply (gateway.RateLimited), with
	// the same Limiter.
	Limits *limits.Limiter
}

// DefaultMaxRequestBytes is 32 MiB, Prometheus's own remote-write limit.
const DefaultMaxRequestBytes = 32 << 20

type appenderKey struct{}

// NewHandler returns the remote-write handler over the store, for the
// agents' gateway: the calling cluster is the request's gateway.Identity.
func NewHandler(store *metricstore.Store, opts Options) http.Handler {
	h := newHandler(store, opts)
	return promhttp.InstrumentHandlerCounter(h.requests, h)
}

func newHandler(store *metricstore.Store, opts Options) *handler {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.Limits == nil {
		lopts := limits.Options{Logger: opts.Logger, Registerer: opts.Registerer}
		if store != nil {
			lopts.HeadSeries = store.HeadSeries
		}
		// Without a file New cannot fail.
		opts.Limits, _ = limits.New(lopts)
	}
	reg := prometheus.WrapRegistererWithPrefix("fleetpulse_hub_ingest_", opts.Registerer)
	promLogger := slog.New(clientErrorsAtDebug{opts.Logger.Handler()})
	// Metadata appending on: remote write 2.0's per-series metadata goes to
	// the appender's UpdateMetadata, which the store keeps per cluster
	// (metricstore.WithMetadata), never in the TSDB.
	rw := remote.NewWriteHandler(promLogger, reg, ctxAppendable{},
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}, false, false, true)
	requests := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "requests_total", Help: "Remote-write requests by status code.",
	}, []string{"code"})
	return &handler{store: store, rw: rw, max: opts.MaxRequestBytes, logger: opts.Logger, limits: opts.Limits, rw1: true, rw2: true, requests: requests,
		refs: &refCaches{store: store}}
}

type handler struct {
	store  *metricstore.Store
	rw     http.Handler // Prometheus's handler: what rw1.go and rw2.go do not take
	max    int64
	logger *slog.Logger
	limits *limits.Limiter
	rw1    bool // remote write 1.0 through rw1.go where it can; tests turn it off to compare
	rw2    bool // remote write 2.0 through rw2.go where it can; likewise
	// rw1Served and rw2Served count the requests rw1.go and rw2.go
	// answered (for tests).
	rw1Served atomic.Int64
	rw2Served atomic.Int64
	requests  *prometheus.CounterVec
	refs      *refCaches // rw1.go's series references, by cluster
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "remote write takes POST", http.StatusMethodNotAllowed)
		return
	}
	id, ok := gateway.Caller(w, r)
	if !ok {
		return
	}
	cluster := id.Cluster
	c := h.limits.For(r.Context(), cluster)
	if r.ContentLength > h.max {
		h.refuse(w, nil, c.RefuseValue(limits.RequestBytes, float64(h.max), fmt.Sprintf("the request body has %d bytes", r.ContentLength)))
		return
	}
	msg, err := writeMessage(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnsupportedMediaType)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, h.max)
	body, err := readBody(r)
	defer putBody(body)
	switch {
	case isTooLarge(err):
		// A body without a Content-Length (chunked) is cut at the limit.
		h.refuse(w, nil, c.RefuseValue(limits.RequestBytes, float64(h.max), "the request body is longer"))
		return
	case err != nil:
		// As Prometheus's handler answers a body it cannot read.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if h.refuse(w, nil, checkDecodedSize(c, body.Bytes())) {
		return
	}
	app, err := h.store.Appender(r.Context(), cluster)
	switch {
	case errors.Is(err, receive.ErrNotReady):
		w.Header().Set("Retry-After", "1")
		http.Error(w, "storage for cluster "+cluster+" is opening; retry", http.StatusServiceUnavailable)
		return
	case err != nil:
		h.logger.ErrorContext(r.Context(), "cannot append for cluster", "cluster", cluster, "err", err)
		http.Error(w, "storage unavailable", http.StatusServiceUnavailable)
		return
	}
	counted := &creationCounter{Appender: app}
	if msg == remoteapi.WriteV1MessageType && h.rw1 && h.writeRW1(w, counted, cluster, body.Bytes()) {
		h.rw1Served.Add(1)
		counted.count(c)
		return
	}
	if msg == remoteapi.WriteV2MessageType && h.rw2 && h.writeRW2(w, counted, cluster, body.Bytes()) {
		h.rw2Served.Add(1)
		counted.count(c)
		return
	}
	created, refusal := checkPrometheusPath(r.Context(), c, app, msg == remoteapi.WriteV2MessageType, body.Bytes())
	if h.refuse(w, app, refusal) {
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body.Bytes()))
	// Prometheus's handler leaves the appender open when it refuses a
	// request before appending (an undecodable body): close what it left
	// open, or the head counts it active forever (and with isolation on,
	// which MultiTSDB turns off, head compaction would wait for it).
	var papp storage.Appender = app
	if msg == remoteapi.WriteV1MessageType {
		keep := &keepGoodSamples{Appender: app, cluster: cluster, logger: h.logger}
		papp, w = keep, &partialAnswer{ResponseWriter: w, keep: keep}
	} else {
		papp = tooOldHistograms{app}
	}
	tracked := &trackedAppender{Appender: papp}
	defer func() {
		if !tracked.closed {
			_ = app.Rollback()
		}
	}()
	h.servePrometheus(w, r.WithContext(context.WithValue(r.Context(), appenderKey{}, storage.Appender(tracked))))
	if tracked.committed {
		c.Created(created)
	}
}

// writeMessage is the remote-write message r holds, or why the hub cannot
// read it (answered 415, as the remote-write 2.0 specification requires
// for a content type or encoding the receiver does not take). Prometheus's
// handler answers 415 too, but only after decompressing the body, so that
// a body of another type that is not snappy gets 400 "s2: corrupt input".
func writeMessage(r *http.Request) (remoteapi.WriteMessageType, error) {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != string(remoteapi.SnappyBlockCompression) {
		return "", fmt.Errorf("%v encoding (compression) is not accepted by this server; only %v is acceptable", enc, remoteapi.SnappyBlockCompression)
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/x-protobuf"
	}
	return remoteapi.ParseProtoMsg(ct)
}

// creationCounter counts the series the hub's own paths create: they
// append a series by reference once they found it, so an append without
// one creates it.
type creationCounter struct {
	storage.Appender
	created   int
	committed bool
}

func (c *creationCounter) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if ref == 0 {
		c.created++
	}
	return c.Appender.Append(ref, l, t, v)
}

// GetRef looks series up as the store's appender does.
func (c *creationCounter) GetRef(l labels.Labels, hash uint64) (storage.SeriesRef, labels.Labels) {
	return refsOf(c.Appender).GetRef(l, hash)
}

func (c *creationCounter) Commit() error {
	err := c.Appender.Commit()
	c.committed = err == nil
	return err
}

// count adds the created series to the cluster's count, if committed.
func (c *creationCounter) count(cl *limits.Cluster) {
	if c.committed {
		cl.Created(c.created)
	}
}

// servePrometheus hands r to Prometheus's handler, which panics on some
// malformed remote write 2.0 requests (metadata naming a symbol the request
// lacks: writev2's ToMetadata indexes the symbols unchecked). Input from
// the network must not take a goroutine down, nor reset the connection
// without a word: the request is refused as malformed.
func (h *handler) servePrometheus(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if p := recover(); p != nil {
			h.logger.DebugContext(r.Context(), "refused a remote write request that Prometheus's handler could not read", "panic", fmt.Sprint(p))
			http.Error(w, fmt.Sprintf("malformed remote write request: %v", p), http.StatusBadRequest)
		}
	}()
	h.rw.ServeHTTP(w, r)
}

// trackedAppender records whether its appender was committed or rolled back.
type trackedAppender struct {
	storage.Appender
	closed, committed bool
}

func (t *trackedAppender) Commit() error {
	t.closed = true
	err := t.Appender.Commit()
	t.committed = err == nil
	return err
}

func (t *trackedAppender) Rollback() error {
	t.closed = true
	return t.Appender.Rollback()
}

// tooOldHistograms makes Prometheus's remote write 2.0 handler answer a
// native histogram that the TSDB refuses as too old (older than the
// out-of-order window allows) as it answers such a float sample: left out,
// and 400 naming it. Its histogram path (storage/remote v0.309.1) takes out
// of order, out of bounds and duplicate as the writer's fault, but not too
// old, which it answers 500: a writer retries a 500, the same histogram is
// refused again, and the whole request with it, for ever.
type tooOldHistograms struct{ storage.Appender }

func (a tooOldHistograms) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram,
	fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	ref, err := a.Appender.AppendHistogram(ref, l, t, h, fh)
	if errors.Is(err, storage.ErrTooOldSample) {
		err = refusedAsOutOfBounds{err}
	}
	return ref, err
}

// refusedAsOutOfBounds is an error that Prometheus's handler takes as out
// of bounds, with the message of the error it holds ("too old sample").
type refusedAsOutOfBounds struct{ error }

func (e refusedAsOutOfBounds) Unwrap() []error { return []error{e.error, storage.ErrOutOfBounds} }

// ctxAppendable hands Prometheus's write handler the appender the request's
// cluster was given.
type ctxAppendable struct{}

func (ctxAppendable) Appender(ctx context.Context) storage.Appender {
	if app, ok := ctx.Value(appenderKey{}).(storage.Appender); ok {
		return app
	}
	return metricstore.FixedAppender{Err: errNoCluster}
}

// errNoCluster stands where no cluster was resolved, which the handler
// prevents, so that nothing can write unrouted.
var errNoCluster = errors.New("no cluster storage for this request")
