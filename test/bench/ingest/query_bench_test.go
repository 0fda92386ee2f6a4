package ingest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetpulse/fleetpulse/dashboards"
)

// What Grafana substitutes for a 1h dashboard with the shipped datasource
// (timeInterval 15s): $__interval is the 15s floor, $__rate_interval
// max($__interval + 15s, 4 × 15s).
var grafanaVars = map[string]string{"__interval": "15s", "__rate_interval": "1m", "__range": "1h", "__range_s": "3600"}

const (
	dashboardTitle = "Fleetpulse / Fleet overview"
	queryStep      = 15 * time.Second
	queryRounds    = 20 // per iteration: each query alone, then the whole dashboard at once
)

// panelQuery is one panel target, variables substituted.
type panelQuery struct {
	name, expr string
	instant    bool
}

// BenchmarkFleetOverviewQueries loads an hour of 100 clusters (inventory,
// agent metrics, events, recording-rule outputs and alerts) into the hub
// and times the Fleet-overview dashboard's queries at the end of that hour:
// each query on its own (p50/p99 over all of them), and the whole
// dashboard's queries sent at once, as Grafana does on a refresh.
func BenchmarkFleetOverviewQueries(b *testing.B) {
	root := repoRoot(b)
	hubBin := buildHub(b, root)
	f := newFleet(fleetClusters, defaultShape, interval, true)
	l := newLoad(f, time.Now().Add(-steps*interval).Truncate(interval), steps, false)
	p := newPKI(b, f.clusters)
	hub := startHub(b, hubBin, p)
	clients := make([]*http.Client, len(f.clusters))
	for c := range clients {
		clients[c] = p.httpClient(p.clients[c])
	}
	ctx := context.Background()
	if st := send(ctx, hub, l, clients, 0, steps, false); st.rejected > 0 {
		b.Fatalf("hub refused %d of %d requests, e.g. %v", st.rejected, st.requests, st.errs)
	}
	series, samples, err := hub.tsdbTotals(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if int(series) != f.seriesCount() || int(samples) != l.samples {
		b.Fatalf("hub holds %.0f series and appended %.0f samples; %d and %d were sent", series, samples, f.seriesCount(), l.samples)
	}
	b.Logf("loaded %d series, %d samples of %d clusters over %s", f.seriesCount(), l.samples, len(f.clusters), steps*interval)

	end := l.start.Add(steps * interval)
	queries := fleetOverviewQueries(b, hub, end)
	for _, q := range queries {
		n, err := hub.runQuery(ctx, q, end)
		if err != nil || n == 0 {
			b.Fatalf("%s: %s: %d series, %v", q.name, q.expr, n, err)
		}
	}

	var single, whole []time.Duration
	perQuery := map[string][]time.Duration{}
	for b.Loop() {
		for range queryRounds {
			for _, q := range queries {
				d := timed(b, func() (int, error) { return hub.runQuery(ctx, q, end) })
				single = append(single, d)
				perQuery[q.name] = append(perQuery[q.name], d)
			}
			whole = append(whole, timed(b, func() (int, error) {
				var wg sync.WaitGroup
				errs := make(chan error, len(queries))
				for _, q := range queries {
					wg.Go(func() {
						if _, err := hub.runQuery(ctx, q, end); err != nil {
							errs <- err
						}
					})
				}
				wg.Wait()
				close(errs)
				return 1, <-errs
			}))
		}
	}
	// The slowest queries, in one log call: the testing package keeps only
	// ten lines of a benchmark's log.
	slowest := slices.Clone(queries)
	slices.SortFunc(slowest, func(x, y panelQuery) int {
		return cmp.Compare(pct(perQuery[y.name], 99), pct(perQuery[x.name], 99))
	})
	var table strings.Builder
	for _, q := range slowest[:min(5, len(slowest))] {
		fmt.Fprintf(&table, "\n  p50 %6.1f ms  p99 %6.1f ms  %s: %s", ms(pct(perQuery[q.name], 50)), ms(pct(perQuery[q.name], 99)), q.name, q.expr)
	}
	b.Logf("%d queries, %d runs each; slowest by p99:%s", len(queries), len(perQuery[queries[0].name]), table.String())
	b.ReportMetric(ms(pct(single, 50)), "query-p50-ms")
	b.ReportMetric(ms(pct(single, 99)), "query-p99-ms")
	b.ReportMetric(ms(pct(whole, 50)), "dashboard-p50-ms")
	b.ReportMetric(ms(pct(whole, 99)), "dashboard-p99-ms")
}

// fleetOverviewQueries reads the shipped Fleet-overview dashboard and
// substitutes its variables as Grafana does with every value selected: a
// query variable becomes its all-value, or the regexp of all its values.
func fleetOverviewQueries(b *testing.B, hub *target, at time.Time) []panelQuery {
	b.Helper()
	ds, err := dashboards.Load()
	if err != nil {
		b.Fatal(err)
	}
	i := slices.IndexFunc(ds, func(d dashboards.Dashboard) bool { return d.Title == dashboardTitle })
	if i < 0 {
		b.Fatalf("no dashboard titled %q in dashboards/", dashboardTitle)
	}
	d := ds[i]
	vars := map[string]string{}
	for k, v := range grafanaVars {
		vars[k] = v
	}
	for _, v := range d.Templating.List {
		switch {
		case v.Type == "datasource":
			vars[v.Name] = "fleetpulse"
		case v.AllValue != "":
			vars[v.Name] = v.AllValue
		default:
			sel, label, ok := v.LabelValuesQuery()
			if !ok {
				b.Fatalf("variable %s: cannot resolve %q", v.Name, v.Definition)
			}
			values, err := hub.labelValues(context.Background(), label, sel, at)
			if err != nil {
				b.Fatal(err)
			}
			vars[v.Name] = "(" + strings.Join(values, "|") + ")"
		}
	}
	var out []panelQuery
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			expr, err := dashboards.Expand(t.Expr, vars)
			if err != nil {
				b.Fatalf("%s / %s: %v", d.Title, p.Title, err)
			}
			// Titles repeat across panel types (a stat and a graph of the same thing).
			name := fmt.Sprintf("%s (%s %s)", p.Title, p.Type, t.RefID)
			out = append(out, panelQuery{name: name, expr: expr, instant: t.Instant})
		}
	}
	return out
}

// runQuery runs q as Grafana would at time at (POST, a range query over
// the last hour on step boundaries unless instant) and returns the number
// of series in the answer.
func (t *target) runQuery(ctx context.Context, q panelQuery, at time.Time) (int, error) {
	form := url.Values{"query": {q.expr}}
	path := "/api/v1/query"
	if q.instant {
		form.Set("time", strconv.FormatInt(at.Unix(), 10))
	} else {
		path = "/api/v1/query_range"
		endTs := at.Truncate(queryStep)
		form.Set("start", strconv.FormatInt(endTs.Add(-time.Hour).Unix(), 10))
		form.Set("end", strconv.FormatInt(endTs.Unix(), 10))
		form.Set("step", strconv.Itoa(int(queryStep.Seconds())))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.baseURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := t.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("%s: %s: decode: %w", q.name, resp.Status, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s: %s: %s", q.name, resp.Status, body.Error)
	}
	return len(body.Data.Result), nil
}

// labelValues lists label's values over the series matching selector.
func (t *target) labelValues(ctx context.Context, label, selector string, at time.Time) ([]string, error) {
	var body struct {
		Data []string `json:"data"`
	}
	path := "/api/v1/label/" + label + "/values?" + url.Values{
		"match[]": {selector}, "start": {strconv.FormatInt(at.Add(-time.Hour).Unix(), 10)}, "end": {strconv.FormatInt(at.Unix(), 10)},
	}.Encode()
	err := t.get(ctx, path, func(resp *http.Response) error { return json.NewDecoder(resp.Body).Decode(&body) })
	return body.Data, err
}

func timed(b *testing.B, run func() (int, error)) time.Duration {
	b.Helper()
	start := time.Now()
	if _, err := run(); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

// pct is the p-th percentile (nearest rank).
func pct(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
