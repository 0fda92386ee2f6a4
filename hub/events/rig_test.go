package events

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/gateway/gatewaytest"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// rig is the hub's event path over real servers: the ingest handler on the
// agents' gateway over mutual TLS, the query handler on an httptest server, a real metric store in a temp dir, the
// store's metrics in their own registry.
type rig struct {
	t      *testing.T
	reg    *prometheus.Registry
	events *Store
	db     *metricstore.Store
	rec    *SeriesRecorder
	ingest *gatewaytest.Server
	query  *httptest.Server
}

func newRig(t *testing.T, capacity int, maxBytes int64, opts ...Option) *rig {
	t.Helper()
	cfg := metricstore.DefaultConfig()
	cfg.Dir = t.TempDir()
	db, err := metricstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	r := &rig{t: t, reg: prometheus.NewRegistry(), db: db, rec: NewSeriesRecorder(db)}
	r.events = NewStore(capacity, r.reg, opts...)
	gw := gateway.New(gateway.Options{})
	gw.Handle("/v1/logs", NewIngestHandler(r.events, r.rec, maxBytes))
	r.ingest = gatewaytest.Start(t, gw)
	r.query = httptest.NewServer(NewQueryHandler(r.events))
	t.Cleanup(r.query.Close)
	return r
}

// post sends body as cluster's OTLP logs request.
func (r *rig) post(cluster string, body []byte) (int, string) {
	req, err := http.NewRequest(http.MethodPost, r.ingest.URL+"/v1/logs", bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	resp, err := r.ingest.Client(cluster).Do(req)
	if err != nil {
		r.t.Error(err)
		return 0, ""
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

// send posts ld and fails the test unless the hub took it.
func (r *rig) send(cluster string, ld plog.Logs) {
	r.t.Helper()
	if status, msg := r.post(cluster, encode(r.t, ld)); status != http.StatusOK {
		r.t.Fatalf("%s: ingest answered %d: %s", cluster, status, msg)
	}
}

type queryAnswer struct {
	Status   string   `json:"status"`
	Data     []Event  `json:"data"`
	Warnings []string `json:"warnings"`
	bytes    int
}

// get queries the events API with the given query string.
func (r *rig) get(query string) queryAnswer {
	r.t.Helper()
	resp, err := http.Get(r.query.URL + "?" + query)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		r.t.Fatalf("query %q answered %d: %s", query, resp.StatusCode, b)
	}
	var a queryAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		r.t.Fatal(err)
	}
	a.bytes = len(b)
	return a
}

// metricCount is how many series the registry exposes on /metrics, and
// how many of them belong to family name.
func (r *rig) metricCount(name string) (all, family int) {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		all += len(mf.GetMetric())
		if mf.GetName() == name {
			family += len(mf.GetMetric())
		}
	}
	return all, family
}

type sample struct {
	t int64
	v float64
}

// stored reads every fleetpulse_events_total series of the metric store
// (of cluster, or all when empty) with its samples.
func (r *rig) stored(cluster string) map[string][]sample {
	r.t.Helper()
	q, err := r.db.Queryable().Querier(0, time.Now().Add(time.Hour).UnixMilli())
	if err != nil {
		r.t.Fatal(err)
	}
	defer q.Close()
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, SeriesName)}
	if cluster != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, "cluster", cluster))
	}
	set := q.Select(context.Background(), true, nil, ms...)
	out := map[string][]sample{}
	for set.Next() {
		it := set.At().Iterator(nil)
		var ss []sample
		for it.Next() != 0 {
			t, v := it.At()
			ss = append(ss, sample{t, v})
		}
		out[set.At().Labels().String()] = ss
	}
	if err := set.Err(); err != nil {
		r.t.Fatal(err)
	}
	return out
}

// testEvent is what an agent's k8sevents receiver puts in a log record.
type testEvent struct {
	reason, typ, kind, namespace, name, msg string
}

// agentLogs encodes events as the agent does: one resource per event.
func agentLogs(ts time.Time, evs ...testEvent) plog.Logs {
	ld := plog.NewLogs()
	for _, ev := range evs {
		rl := ld.ResourceLogs().AppendEmpty()
		res := rl.Resource().Attributes()
		res.PutStr("k8s.object.kind", ev.kind)
		res.PutStr("k8s.object.name", ev.name)
		res.PutStr("k8s.namespace.name", ev.namespace)
		lr := rl.ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
		lr.SetTimestamp(pcommon.NewTimestampFromTime(ts))
		lr.Body().SetStr(ev.msg)
		lr.Attributes().PutStr("k8s.event.reason", ev.reason)
		lr.Attributes().PutStr("k8s.event.type", ev.typ)
	}
	return ld
}

func encode(t testing.TB, ld plog.Logs) []byte {
	t.Helper()
	b, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
