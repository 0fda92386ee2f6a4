package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetpulse/fleetpulse/dashboards"
)

// What Grafana substitutes for a 1 h view with the shipped datasource
// (timeInterval 15s), as test/bench/ingest's dashboard benchmark does.
var overviewVars = map[string]string{"__interval": "15s", "__rate_interval": "1m", "__range": "1h", "__range_s": "3600"}

const overviewTitle = "Fleetpulse / Fleet overview"

// panelQuery is one panel target of a dashboard, variables substituted.
type panelQuery struct {
	name, expr string
	instant    bool
}

// promEndpoint is a Prometheus HTTP API: a hub's /api/v1 or thanos query's.
type promEndpoint struct {
	name, base string
	client     *http.Client
}

func newPromEndpoint(name, base string) promEndpoint {
	return promEndpoint{name: name, base: base, client: &http.Client{Timeout: 2 * time.Minute,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32}}}
}

// overviewQueries reads the shipped Fleet-overview dashboard and
// substitutes its variables as Grafana does with every value selected,
// resolving query variables through e.
func overviewQueries(ctx context.Context, e promEndpoint, at time.Time) ([]panelQuery, error) {
	ds, err := dashboards.Load()
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(ds, func(d dashboards.Dashboard) bool { return d.Title == overviewTitle })
	if i < 0 {
		return nil, fmt.Errorf("no dashboard titled %q in dashboards/", overviewTitle)
	}
	d := ds[i]
	vars := map[string]string{}
	for k, v := range overviewVars {
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
				return nil, fmt.Errorf("variable %s: cannot resolve %q", v.Name, v.Definition)
			}
			values, err := e.labelValues(ctx, label, sel, at)
			if err != nil {
				return nil, err
			}
			vars[v.Name] = "(" + strings.Join(values, "|") + ")"
		}
	}
	var out []panelQuery
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			expr, err := dashboards.Expand(t.Expr, vars)
			if err != nil {
				return nil, fmt.Errorf("%s / %s: %w", d.Title, p.Title, err)
			}
			out = append(out, panelQuery{name: fmt.Sprintf("%s (%s %s)", p.Title, p.Type, t.RefID), expr: expr, instant: t.Instant})
		}
	}
	return out, nil
}

// query runs q as Grafana does at time at (POST; a range query over the
// hour before at, on step boundaries, unless instant) and returns the
// number of series answered.
func (e promEndpoint) query(ctx context.Context, q panelQuery, at time.Time) (int, error) {
	form := url.Values{"query": {q.expr}}
	path := "/api/v1/query"
	if q.instant {
		form.Set("time", strconv.FormatInt(at.Unix(), 10))
	} else {
		path = "/api/v1/query_range"
		end := at.Truncate(15 * time.Second)
		form.Set("start", strconv.FormatInt(end.Add(-time.Hour).Unix(), 10))
		form.Set("end", strconv.FormatInt(end.Unix(), 10))
		form.Set("step", "15")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.client.Do(req)
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
		return 0, fmt.Errorf("%s through %s: %s: decode: %w", q.name, e.name, resp.Status, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("%s through %s: %s: %s", q.name, e.name, resp.Status, body.Error)
	}
	return len(body.Data.Result), nil
}

func (e promEndpoint) labelValues(ctx context.Context, label, selector string, at time.Time) ([]string, error) {
	u := e.base + "/api/v1/label/" + label + "/values?" + url.Values{
		"match[]": {selector}, "start": {strconv.FormatInt(at.Add(-time.Hour).Unix(), 10)}, "end": {strconv.FormatInt(at.Unix(), 10)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := e.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data []string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("label values of %s through %s: %s: %w", label, e.name, resp.Status, err)
	}
	return body.Data, nil
}

// queryLatency is the Fleet-overview dashboard's latency through one
// endpoint: each query on its own, and the whole dashboard at once as
// Grafana sends it on a refresh.
type queryLatency struct {
	single, dashboard []time.Duration
	// answered is how many of the queries answered at least one series;
	// failed how many runs of a query failed, and one such error.
	answered, queries, failed int
	firstErr                  error
}

func (ql *queryLatency) fail(err error) {
	if ql.failed == 0 {
		ql.firstErr = err
	}
	ql.failed++
}

// measureOverview runs the dashboard's queries rounds times through e. A
// query that fails is counted, not timed.
func measureOverview(ctx context.Context, e promEndpoint, queries []panelQuery, rounds int) queryLatency {
	at := time.Now()
	var ql queryLatency
	ql.queries = len(queries)
	for _, q := range queries {
		n, err := e.query(ctx, q, at)
		if err != nil {
			ql.fail(err)
		}
		if n > 0 {
			ql.answered++
		}
	}
	for range rounds {
		for _, q := range queries {
			start := time.Now()
			if _, err := e.query(ctx, q, at); err != nil {
				ql.fail(err)
				continue
			}
			ql.single = append(ql.single, time.Since(start))
		}
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, len(queries))
		for _, q := range queries {
			wg.Go(func() {
				if _, err := e.query(ctx, q, at); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			ql.fail(err)
			continue
		}
		ql.dashboard = append(ql.dashboard, time.Since(start))
	}
	slices.Sort(ql.single)
	slices.Sort(ql.dashboard)
	return ql
}
