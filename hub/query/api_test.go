package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	promapi "github.com/prometheus/prometheus/web/api/v1"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/ingest"
	"github.com/fleetpulse/fleetpulse/hub/metadata"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
	"github.com/fleetpulse/fleetpulse/hub/query"
)

// hub is the query API and the ingest handler over one real store, each
// served over HTTP, with every log line and every panic the servers
// recover kept.
type hub struct {
	api, ingest *httptest.Server
	logs        *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// alertmanagers stands for the rules' notifier.
type alertmanagers struct{}

func (alertmanagers) Alertmanagers() []*url.URL {
	return []*url.URL{{Scheme: "http", Host: "alertmanager.example:9093", Path: "/api/v2/alerts"}}
}
func (alertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

func startHub(t *testing.T) *hub {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	md, err := metadata.New(metadata.DefaultLimits(), reg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := metricstore.DefaultConfig()
	cfg.Dir, cfg.Shards = t.TempDir(), 2
	store, err := metricstore.Open(cfg, logger, reg, metricstore.WithMetadata(md))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })

	opts := query.DefaultOptions()
	opts.Logger, opts.Registerer, opts.Gatherer = logger, reg, reg
	opts.Metadata, opts.Exemplars, opts.TSDB, opts.Retention = md, store.ExemplarQueryable(), store, cfg.Retention
	opts.Alertmanagers = func(context.Context) promapi.AlertmanagerRetriever { return alertmanagers{} }
	api := httptest.NewUnstartedServer(query.NewHandler(query.NewEngine(opts), store.Queryable(), opts))
	api.Config.ErrorLog = log.New(logs, "", 0) // where a panicking request is reported
	api.Start()
	t.Cleanup(api.Close)
	write := ingest.NewHandler(store, ingest.Options{Logger: logger, Registerer: reg})
	// X-Test-Cluster stands in for the cluster the agents' gateway proves.
	ing := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		write.ServeHTTP(w, r.WithContext(gateway.NewContext(r.Context(), gateway.Identity{Cluster: r.Header.Get("X-Test-Cluster")})))
	}))
	ing.Config.ErrorLog = log.New(logs, "", 0)
	ing.Start()
	t.Cleanup(ing.Close)
	return &hub{api: api, ingest: ing, logs: logs}
}

// write remote-writes a snappy-compressed body as cluster; v2 picks the
// remote write 2.0 content type.
func (h *hub) write(t *testing.T, cluster string, v2 bool, body []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.ingest.URL, bytes.NewReader(snappy.Encode(nil, body)))
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	if v2 {
		req.Header.Set("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request")
		req.Header.Set("X-Prometheus-Remote-Write-Version", "2.0.0")
	}
	req.Header.Set("X-Test-Cluster", cluster)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("remote write as %s: %d %s", cluster, resp.StatusCode, msg)
	}
}

// rw1 is a remote write 1.0 request.
func rw1(t *testing.T, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rw2Series is a remote write 2.0 series, symbolized when the request is
// built.
type rw2Series struct {
	labels           []string
	value            float64
	ts               int64
	typ              writev2.Metadata_MetricType
	help, unit       string
	exemplarTraceIDs []string
}

func rw2(t *testing.T, series ...rw2Series) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	var req writev2.Request
	for _, s := range series {
		ts := writev2.TimeSeries{Samples: []writev2.Sample{{Value: s.value, Timestamp: s.ts}}}
		for _, l := range s.labels {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(l))
		}
		ts.Metadata = writev2.Metadata{Type: s.typ, HelpRef: st.Symbolize(s.help), UnitRef: st.Symbolize(s.unit)}
		for i, id := range s.exemplarTraceIDs {
			ts.Exemplars = append(ts.Exemplars, writev2.Exemplar{
				LabelsRefs: []uint32{st.Symbolize("trace_id"), st.Symbolize(id)}, Value: float64(i), Timestamp: s.ts,
			})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	req.Symbols = st.Symbols()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// apiAnswer is a decoded answer of the API.
type apiAnswer struct {
	code        int
	contentType string
	body        []byte
	Status      string          `json:"status"`
	Data        json.RawMessage `json:"data"`
	ErrorType   string          `json:"errorType"`
	Error       string          `json:"error"`
}

// call sends a request to the API; form goes in the URL for GET and
// DELETE, in the body otherwise.
func (h *hub) call(t *testing.T, method, path string, form url.Values, body []byte, header map[string]string) apiAnswer {
	t.Helper()
	u := h.api.URL + "/api/v1" + path
	var rd io.Reader = bytes.NewReader(body)
	if form != nil {
		if method == http.MethodGet || method == http.MethodDelete || method == http.MethodOptions {
			u += "?" + form.Encode()
		} else {
			rd = strings.NewReader(form.Encode())
		}
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil && body == nil && method != http.MethodGet {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	a := apiAnswer{code: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, path, err)
	}
	if strings.HasPrefix(a.contentType, "application/json") {
		if err := json.Unmarshal(a.body, &a); err != nil {
			t.Fatalf("%s %s: not JSON: %v: %s", method, path, err, a.body)
		}
	}
	return a
}
