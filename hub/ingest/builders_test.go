package ingest

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"

	"github.com/fleetpulse/fleetpulse/hub/gateway"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// testCluster is the identity every request of these tests carries.
const testCluster = "cluster-a"

// openStore opens a store in a temp dir with the given out-of-order window
// and any other changes to the default configuration.
func openStore(t testing.TB, ooo time.Duration, reg prometheus.Registerer, configure ...func(*metricstore.Config)) *metricstore.Store {
	t.Helper()
	cfg := metricstore.DefaultConfig()
	cfg.Dir = t.TempDir()
	cfg.OutOfOrderWindow = ooo
	for _, c := range configure {
		c(&cfg)
	}
	store, err := metricstore.Open(cfg, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// newTestHandler is the handler over store, for testCluster, with or
// without its own paths (rw1.go and rw2.go).
func newTestHandler(store *metricstore.Store, fast bool) *handler {
	h := newHandler(store, Options{})
	h.rw1, h.rw2 = fast, fast
	return h
}

// series is a remote write 1.0 series named name (none if empty) with the
// given label names and values, in that order.
func series(name string, samples []prompb.Sample, pairs ...string) prompb.TimeSeries {
	ts := prompb.TimeSeries{Samples: samples}
	if name != "" {
		ts.Labels = append(ts.Labels, prompb.Label{Name: "__name__", Value: name})
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		ts.Labels = append(ts.Labels, prompb.Label{Name: pairs[i], Value: pairs[i+1]})
	}
	return ts
}

// rw1Proto is the request's protobuf, uncompressed: what a fuzz seed or
// a decoder takes.
func rw1Proto(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rw1Marshal is the request as a body, snappy-compressed as sent.
func rw1Marshal(t testing.TB, req *prompb.WriteRequest) []byte {
	t.Helper()
	return snappy.Encode(nil, rw1Proto(t, req))
}

// rw1Body is a remote write 1.0 body of the series.
func rw1Body(t testing.TB, ts ...prompb.TimeSeries) []byte {
	t.Helper()
	return rw1Marshal(t, &prompb.WriteRequest{Timeseries: ts})
}

// writeRequest is a remote write 1.0 body of one sample of one series.
func writeRequest(t testing.TB, ts time.Time, name string, v float64, labelPairs ...string) []byte {
	t.Helper()
	return rw1Body(t, series(name, []prompb.Sample{{Value: v, Timestamp: ts.UnixMilli()}}, labelPairs...))
}

// rw2Header is the Content-Type of a remote write 2.0 request.
var rw2Header = map[string]string{"Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}

// v2TS is a series of a remote write 2.0 request, symbolized into the
// request's table when the request is built.
type v2TS func(*writev2.SymbolsTable) writev2.TimeSeries

// v2series is a series of the given label names and values, in that order.
func v2series(samples []writev2.Sample, pairs ...string) v2TS {
	return func(st *writev2.SymbolsTable) writev2.TimeSeries {
		ts := writev2.TimeSeries{Samples: samples}
		for _, s := range pairs {
			ts.LabelsRefs = append(ts.LabelsRefs, st.Symbolize(s))
		}
		return ts
	}
}

// with changes the series once symbolized.
func (f v2TS) with(change func(*writev2.SymbolsTable, *writev2.TimeSeries)) v2TS {
	return func(st *writev2.SymbolsTable) writev2.TimeSeries {
		ts := f(st)
		change(st, &ts)
		return ts
	}
}

// withMetadata is metadata as the agent sends it.
func withMetadata(typ writev2.Metadata_MetricType, help, unit string) func(*writev2.SymbolsTable, *writev2.TimeSeries) {
	return func(st *writev2.SymbolsTable, ts *writev2.TimeSeries) {
		ts.Metadata = writev2.Metadata{Type: typ, HelpRef: st.Symbolize(help), UnitRef: st.Symbolize(unit)}
	}
}

// rw2Body is a remote write 2.0 body of the series, with their symbols.
func rw2Body(t testing.TB, series ...v2TS) []byte {
	t.Helper()
	st := writev2.NewSymbolTable()
	req := writev2.Request{}
	for _, s := range series {
		req.Timeseries = append(req.Timeseries, s(&st))
	}
	req.Symbols = st.Symbols()
	return rw2Marshal(t, &req)
}

// rw2Marshal is the request as a body, snappy-compressed as sent.
func rw2Marshal(t testing.TB, req *writev2.Request) []byte {
	t.Helper()
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, b)
}

type answer struct {
	code   int
	body   string
	header http.Header
}

// post sends a remote-write body to h as testCluster, as the gateway hands
// it requests.
func post(h http.Handler, body []byte, header map[string]string) answer {
	return postAs(h, testCluster, body, header)
}

// postAs is post as the given cluster. A header given an empty value is
// removed.
func postAs(h http.Handler, cluster string, body []byte, header map[string]string) answer {
	r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/x-protobuf")
	r.Header.Set("Content-Encoding", "snappy")
	for k, v := range header {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r.WithContext(gateway.NewContext(r.Context(), gateway.Identity{Cluster: cluster})))
	return answer{w.Code, w.Body.String(), w.Header()}
}
