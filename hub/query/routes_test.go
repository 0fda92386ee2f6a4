package query_test

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
)

// registeredRoutes reads the routes Prometheus's API registers ("GET
// /query") from its Register in the module's source, so that a route a
// later Prometheus adds fails TestEveryRouteAnswers until it is answered.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/prometheus/prometheus").Output()
	if err != nil {
		t.Fatalf("locate the prometheus module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(dir)), "web", "api", "v1", "api.go"))
	if err != nil {
		t.Fatal(err)
	}
	body := string(src)
	start := strings.Index(body, "func (api *API) Register(r *route.Router) {")
	if start < 0 {
		t.Fatal("no Register in web/api/v1/api.go")
	}
	body = body[start:]
	body = body[:strings.Index(body, "\n}\n")]
	methods := map[string]string{"Get": "GET", "Post": "POST", "Put": "PUT", "Del": "DELETE", "Options": "OPTIONS"}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s*r\.(\w+)\("([^"]+)"`).FindAllStringSubmatch(body, -1) {
		method, ok := methods[m[1]]
		if !ok {
			t.Fatalf("route %s %s: unknown router method", m[1], m[2])
		}
		out[method+" "+m[2]] = true
	}
	if len(out) < 40 {
		t.Fatalf("read only %d routes from Register: %v", len(out), out)
	}
	return out
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}

// TestEveryRouteAnswers calls every route Prometheus's API registers, over
// HTTP, against the hub's API over a real store holding a series with
// metadata and an exemplar: each answers as Prometheus does (JSON,
// "success") or, where the hub has no such thing, with an empty result or
// a 4xx saying why, and no request panics.
func TestEveryRouteAnswers(t *testing.T) {
	t.Parallel()
	h := startHub(t)
	now := time.Now()
	at := now.Add(-time.Minute)
	h.write(t, "east", true, rw2(t, rw2Series{
		labels: []string{"__name__", "probe_total", "job", "probe"}, value: 1, ts: at.UnixMilli(),
		typ: writev2.Metadata_METRIC_TYPE_COUNTER, help: "Probes sent.", exemplarTraceIDs: []string{"trace-1"},
	}))
	read, err := proto.Marshal(&prompb.ReadRequest{
		Queries: []*prompb.Query{{StartTimestampMs: at.Add(-time.Minute).UnixMilli(), EndTimestampMs: now.UnixMilli(),
			Matchers: []*prompb.LabelMatcher{{Type: prompb.LabelMatcher_EQ, Name: "__name__", Value: "probe_total"}}}},
		AcceptedResponseTypes: []prompb.ReadRequest_ResponseType{prompb.ReadRequest_STREAMED_XOR_CHUNKS},
	})
	if err != nil {
		t.Fatal(err)
	}
	readHeader := map[string]string{"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy", "X-Prometheus-Remote-Read-Version": "0.1.0"}
	instant := form("query", "probe_total", "time", fmt.Sprint(now.Unix()))
	rng := form("query", "probe_total", "start", fmt.Sprint(at.Add(-time.Minute).Unix()), "end", fmt.Sprint(now.Unix()), "step", "15")
	exemplars := form("query", "probe_total", "start", fmt.Sprint(at.Add(-time.Minute).Unix()), "end", fmt.Sprint(now.Unix()))
	match := form("match[]", "probe_total")
	contains := func(want ...string) func(*testing.T, apiAnswer) {
		return func(t *testing.T, a apiAnswer) {
			for _, w := range want {
				if !strings.Contains(string(a.Data), w) {
					t.Errorf("data %s does not hold %s", a.Data, w)
				}
			}
		}
	}
	equal := func(want string) func(*testing.T, apiAnswer) {
		return func(t *testing.T, a apiAnswer) {
			if string(a.Data) != want {
				t.Errorf("data = %s, want %s", a.Data, want)
			}
		}
	}

	cases := []struct {
		route        string // as Register registers it
		method, path string
		form         url.Values
		body         []byte
		header       map[string]string
		code         int
		check        func(*testing.T, apiAnswer)
	}{
		{route: "OPTIONS /*path", path: "/query", code: http.StatusNoContent},
		{route: "GET /query", form: instant, code: 200, check: contains(`"cluster":"east"`)},
		{route: "POST /query", form: instant, code: 200, check: contains(`"cluster":"east"`)},
		{route: "GET /query_range", form: rng, code: 200, check: contains(`"matrix"`, `"cluster":"east"`)},
		{route: "POST /query_range", form: rng, code: 200, check: contains(`"matrix"`)},
		{route: "GET /query_exemplars", form: exemplars, code: 200, check: contains(`"trace_id":"trace-1"`, `"cluster":"east"`)},
		{route: "POST /query_exemplars", form: exemplars, code: 200, check: contains(`"trace_id":"trace-1"`)},
		{route: "GET /query_exemplars", path: "/query_exemplars", form: form("query", "probe_total{"), code: 400},
		{route: "GET /format_query", form: form("query", "sum(probe_total)by(job)"), code: 200, check: equal(`"sum by (job) (probe_total)"`)},
		{route: "POST /format_query", form: form("query", "sum(probe_total)"), code: 200},
		{route: "GET /parse_query", form: form("query", "probe_total"), code: 200, check: contains(`"vectorSelector"`)},
		{route: "POST /parse_query", form: form("query", "probe_total"), code: 200},
		{route: "GET /labels", code: 200, check: contains(`"cluster"`, `"job"`)},
		{route: "POST /labels", code: 200, check: contains(`"cluster"`)},
		{route: "GET /label/:name/values", path: "/label/job/values", code: 200, check: equal(`["probe"]`)},
		{route: "GET /series", form: match, code: 200, check: contains(`"cluster":"east"`)},
		{route: "POST /series", form: match, code: 200, check: contains(`"cluster":"east"`)},
		{route: "DELETE /series", form: match, code: 404},
		{route: "GET /scrape_pools", code: 200, check: equal(`{"scrapePools":[]}`)},
		{route: "GET /targets", code: 200, check: equal(`{"activeTargets":[],"droppedTargets":[],"droppedTargetCounts":{}}`)},
		{route: "GET /targets/metadata", code: 200, check: equal(`[]`)},
		{route: "GET /targets/relabel_steps", form: form("scrapePool", "kubernetes-pods", "labels", "{}"), code: 400},
		{route: "GET /alertmanagers", code: 200, check: equal(`{"activeAlertmanagers":[{"url":"http://alertmanager.example:9093/api/v2/alerts"}],"droppedAlertmanagers":[]}`)},
		{route: "GET /metadata", code: 200, check: equal(`{"probe_total":[{"type":"counter","unit":"","help":"Probes sent."}]}`)},
		{route: "GET /metadata", path: "/metadata", form: form("limit", "many"), code: 400},
		{route: "GET /status/config", code: 200, check: contains(`"yaml"`)},
		{route: "GET /status/runtimeinfo", code: 200, check: contains(`"storageRetention":"15d"`, `"GOMAXPROCS"`)},
		{route: "GET /status/buildinfo", code: 200, check: contains(`"goVersion"`)},
		{route: "GET /status/flags", code: 200, check: equal(`{}`)},
		{route: "GET /status/tsdb", code: 200, check: contains(`"numSeries":1,`, `"chunkCount":1,`, `{"name":"probe_total","value":1}`)},
		{route: "GET /status/tsdb", path: "/status/tsdb", form: form("limit", "0"), code: 400},
		{route: "GET /status/tsdb/blocks", code: 200, check: equal(`{"blocks":[]}`)},
		{route: "GET /features", code: 200, check: contains(`"api":{`, `"remote_write_receiver":false`)},
		{route: "GET /status/walreplay", code: 200, check: equal(`{"min":0,"max":0,"current":0}`)},
		{route: "GET /notifications", code: 200, check: equal(`[]`)},
		{route: "GET /notifications/live", code: http.StatusNoContent},
		{route: "POST /read", body: snappy.Encode(nil, read), header: readHeader, code: 200},
		{route: "POST /read", path: "/read", body: []byte("not a read request"), header: readHeader, code: 400},
		{route: "POST /write", body: []byte("x"), code: 404},
		{route: "POST /otlp/v1/metrics", body: []byte("x"), code: 404},
		{route: "GET /alerts", code: 200, check: equal(`{"alerts":[]}`)},
		{route: "GET /rules", code: 200, check: equal(`{"groups":[]}`)},
		{route: "POST /admin/tsdb/delete_series", form: match, code: 404},
		{route: "POST /admin/tsdb/clean_tombstones", code: 404},
		{route: "POST /admin/tsdb/snapshot", code: 404},
		{route: "PUT /admin/tsdb/delete_series", form: match, code: 404},
		{route: "PUT /admin/tsdb/clean_tombstones", code: 404},
		{route: "PUT /admin/tsdb/snapshot", code: 404},
	}

	registered := registeredRoutes(t)
	called := map[string]bool{}
	for _, tc := range cases {
		method, path, _ := strings.Cut(tc.route, " ")
		if tc.path != "" {
			path = tc.path
		}
		if tc.method != "" {
			method = tc.method
		}
		if !registered[tc.route] {
			t.Errorf("%s is not a route Prometheus's API registers", tc.route)
		}
		called[tc.route] = true
		t.Run(method+" "+path+"?"+tc.form.Encode(), func(t *testing.T) {
			a := h.call(t, method, path, tc.form, tc.body, tc.header)
			if a.code != tc.code {
				t.Fatalf("answered %d, want %d: %s", a.code, tc.code, a.body)
			}
			switch {
			case tc.route == "POST /read" && a.code == 200:
				if !strings.HasPrefix(a.contentType, "application/x-streamed-protobuf") || !strings.Contains(string(a.body), "probe_total") {
					t.Errorf("remote read answered %q: %q", a.contentType, a.body)
				}
			case tc.route == "POST /read":
				if !strings.Contains(string(a.body), "snappy") {
					t.Errorf("refused without saying why: %s", a.body)
				}
			case a.code == http.StatusNoContent:
			case a.code >= 400:
				if a.Status != "error" || a.ErrorType == "" || a.Error == "" {
					t.Errorf("refused without a JSON error saying why: %s %s", a.contentType, a.body)
				}
			default:
				if a.Status != "success" {
					t.Fatalf("status %q: %s", a.Status, a.body)
				}
				if tc.check != nil {
					tc.check(t, a)
				}
			}
		})
	}
	for route := range registered {
		if !called[route] {
			t.Errorf("Prometheus's API registers %s, which the test does not call", route)
		}
	}
	if logs := h.logs.String(); strings.Contains(strings.ToLower(logs), "panic") {
		t.Errorf("a request panicked:\n%s", logs)
	}
}
