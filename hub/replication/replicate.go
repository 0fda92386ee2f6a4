package replication

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	dskitring "github.com/grafana/dskit/ring"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/ring"
)

// Path is where a replica takes the writes another owner replicates to it,
// on its agents' port: {cluster} names the cluster they are for.
const Path = "/replication/v1/write/{" + gateway.ClusterPathValue + "}"

// Ring is the ring as replication reads it (hub/ring's Ring).
type Ring interface {
	WriteSet(cluster string) (dskitring.ReplicationSet, error)
	Self() ring.Instance
}

// Options are what a Replicator writes with.
type Options struct {
	// Local is hub/ingest's handler over this replica's store.
	Local http.Handler
	Ring  Ring
	// MaxRequestBytes is the largest body replicated; a longer one goes to
	// Local alone, which refuses it (413).
	MaxRequestBytes int64
	Logger          *slog.Logger
	Registerer      prometheus.Registerer
}

// Replicator is the agents' remote-write handler of a replica whose
// clusters have several owners: it writes each request locally and to the
// cluster's other owners, and answers once a quorum did.
type Replicator struct {
	local   http.Handler
	ring    Ring
	client  *http.Client
	timeout time.Duration
	max     int64
	logger  *slog.Logger
	metrics *metrics
}

// New builds a Replicator that sends with cfg's client certificate.
func New(cfg Config, opts Options) (*Replicator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Sends() {
		return nil, errors.New("replicating writes needs this replica's client certificate (--replication.tls-cert-file)")
	}
	tlsCfg, err := cfg.clientTLS()
	if err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	// Connections to the other replicas stay open: every write of their
	// shared clusters takes one.
	transport := &http.Transport{TLSClientConfig: tlsCfg, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout, ForceAttemptHTTP2: false}
	return &Replicator{local: opts.Local, ring: opts.Ring, timeout: cfg.Timeout, max: opts.MaxRequestBytes,
		client: &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		logger: opts.Logger, metrics: newMetrics(opts.Registerer)}, nil
}

// ServeHTTP writes an agent's request to its cluster's owners.
func (rp *Replicator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := gateway.Caller(w, r)
	if !ok {
		return
	}
	if r.Method != http.MethodPost || r.ContentLength > rp.max {
		// Refused by the ingest handler, with its message.
		rp.local.ServeHTTP(w, r)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, rp.max+1))
	if err != nil {
		http.Error(w, fmt.Sprintf("read the request body: %v", err), http.StatusBadRequest)
		return
	}
	if int64(len(body)) > rp.max {
		r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
		rp.local.ServeHTTP(w, r)
		return
	}
	rs, err := rp.ring.WriteSet(id.Cluster)
	if err != nil {
		rp.noQuorum(w, r, id.Cluster, err)
		return
	}
	// The writes outlive the agent's request when a quorum answered before
	// every owner did (a replication factor of 3 or more): the others
	// still get it.
	ctx := context.WithoutCancel(r.Context())
	local := r.Clone(ctx)
	self := rp.ring.Self().ID
	results, err := rs.Do(ctx, 0, func(_ context.Context, d *dskitring.InstanceDesc) (any, error) {
		var a *answer
		if d.Id == self {
			a = rp.writeLocal(local, body)
		} else {
			a = rp.writePeer(ctx, ring.InstanceOf(d), id.Cluster, r.Header, body)
		}
		if a.class() != success {
			return nil, a
		}
		return a, nil
	})
	if err != nil {
		if a := (*answer)(nil); errors.As(err, &a) && a.class() == refused {
			a.writeTo(w)
			return
		}
		rp.noQuorum(w, r, id.Cluster, err)
		return
	}
	best := results[0].(*answer)
	for _, res := range results {
		if a := res.(*answer); a.owner == self {
			best = a
		}
	}
	best.writeTo(w)
}

// noQuorum answers an agent whose write fewer than a quorum of owners
// wrote: it sends it again.
func (rp *Replicator) noQuorum(w http.ResponseWriter, r *http.Request, cluster string, err error) {
	rp.metrics.quorumFailures.Inc()
	rp.logger.WarnContext(r.Context(), "a write missed its quorum of owners; the agent retries", "cluster", cluster, "err", err)
	w.Header().Set("Retry-After", "1")
	http.Error(w, fmt.Sprintf("the write for cluster %q did not reach a quorum of its owners; retry: %v", cluster, err), http.StatusServiceUnavailable)
}

// writeLocal writes body into this replica's store through the ingest
// handler, as the agent's own request.
func (rp *Replicator) writeLocal(r *http.Request, body []byte) *answer {
	a := newAnswer(rp.ring.Self().ID)
	r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	rp.local.ServeHTTP(a, r)
	return a
}

// forwardedHeaders are the agent's request headers a replicated write
// carries: what the ingest handler reads, and the request ID for the logs.
var forwardedHeaders = []string{"Content-Type", "Content-Encoding", "X-Prometheus-Remote-Write-Version", "User-Agent"}

// writePeer sends body to another owner of cluster.
func (rp *Replicator) writePeer(ctx context.Context, to ring.Instance, cluster string, h http.Header, body []byte) *answer {
	a := newAnswer(to.ID)
	start := time.Now()
	defer func() {
		rp.metrics.requests.WithLabelValues(a.class().String()).Inc()
		rp.metrics.duration.Observe(time.Since(start).Seconds())
		if a.class() != success {
			rp.logger.DebugContext(ctx, "a replicated write failed", "cluster", cluster, "owner", to.ID, "addr", to.HTTPAddr, "err", a.Error())
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, rp.timeout)
	defer cancel()
	u := url.URL{Scheme: "https", Host: to.HTTPAddr, Path: "/replication/v1/write/" + url.PathEscape(cluster)}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		a.err = err
		return a
	}
	for _, k := range forwardedHeaders {
		if v := h.Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	if id := gateway.RequestID(ctx); id != "" {
		req.Header.Set(gateway.HeaderRequestID, id)
	}
	resp, err := rp.client.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	for k, v := range resp.Header {
		if k == "Content-Type" || k == "Retry-After" || strings.HasPrefix(k, "X-Prometheus-Remote-Write-") {
			a.header[k] = v
		}
	}
	_, _ = io.Copy(a, io.LimitReader(resp.Body, maxAnswerBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	return a
}
