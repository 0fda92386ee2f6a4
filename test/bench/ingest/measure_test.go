package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the process's CPU time so far: utime+stime of all threads.
func (t *target) cpuSeconds() (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.proc.PID()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", t.name, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: short /proc stat %q", t.name, s)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: /proc stat %q: %v %v", t.name, s, err1, err2)
	}
	return (utime + stime) / clockTicks, nil
}

// rssBytes is VmRSS from /proc/<pid>/status.
func (t *target) rssBytes() (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", t.proc.PID()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", t.name, err)
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("%s: VmRSS %q: %w", t.name, rest, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("%s: no VmRSS in /proc status", t.name)
}

// settledRSS samples RSS every 500ms after a load until two samples in a
// row are within 1% of each other (the runtime's GC and scavenger have
// caught up with the load's garbage), or until the deadline; it returns the
// last sample.
func (t *target) settledRSS(ctx context.Context) (float64, error) {
	last, err := t.rssBytes()
	if err != nil {
		return 0, err
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, nil
		case <-tick.C:
		}
		rss, err := t.rssBytes()
		if err != nil {
			return 0, err
		}
		if math.Abs(rss-last) < 0.01*last {
			return rss, nil
		}
		last = rss
	}
}

// tsdbTotals sums, over every TSDB of the target (one per tenant for the
// hub and Thanos), the head's series and the samples appended, from its
// /metrics. Names differ by prefix only (the hub's carry fleetpulse_hub_).
// VictoriaMetrics has no head: series is -1 and samples its rows added to
// storage.
func (t *target) tsdbTotals(ctx context.Context) (series, samples float64, err error) {
	if t.vm {
		series = -1
	}
	err = t.get(ctx, "/metrics", func(resp *http.Response) error {
		p := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := p.TextToMetricFamilies(resp.Body)
		if err != nil {
			return err
		}
		for name, f := range fams {
			for _, m := range f.GetMetric() {
				// VictoriaMetrics states no types: its values are untyped.
				v := m.GetGauge().GetValue() + m.GetCounter().GetValue() + m.GetUntyped().GetValue()
				switch {
				case strings.HasSuffix(name, "prometheus_tsdb_head_series"):
					series += v
				case strings.HasSuffix(name, "prometheus_tsdb_head_samples_appended_total"),
					name == "vm_rows_added_to_storage_total":
					samples += v
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return series, samples, nil
}

// instantQuery runs a PromQL instant query at ts through the target's
// Prometheus API and returns the single sample's value.
func (t *target) instantQuery(ctx context.Context, q string, ts time.Time) (float64, error) {
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	path := "/api/v1/query?" + url.Values{"query": {q}, "time": {strconv.FormatInt(ts.Unix(), 10)}}.Encode()
	err := t.get(ctx, path, func(resp *http.Response) error { return json.NewDecoder(resp.Body).Decode(&body) })
	if err != nil {
		return 0, err
	}
	if body.Status != "success" || len(body.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: query %s: status %s %s, %d results", t.name, q, body.Status, body.Error, len(body.Data.Result))
	}
	s, _ := body.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(s, 64)
}
