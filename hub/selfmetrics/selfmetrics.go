package selfmetrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/storage"
)

// Config says what to write and how often.
type Config struct {
	// Interval between two writes.
	Interval time.Duration
	// Prefixes of the metric names written.
	Prefixes []string
}

// Validate returns every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("self metrics interval must be positive, got %s", c.Interval))
	}
	if len(c.Prefixes) == 0 {
		errs = append(errs, errors.New("self metrics need at least one metric name prefix"))
	}
	return errors.Join(errs...)
}

// Writer writes a registry's series into an Appendable.
type Writer struct {
	cfg    Config
	from   prometheus.Gatherer
	to     storage.Appendable
	logger *slog.Logger
	now    func() time.Time
	// last holds the series written last time, by their labels' string,
	// to mark those that went stale.
	last map[string]labels.Labels
}

// New builds a Writer; Run runs it.
func New(cfg Config, from prometheus.Gatherer, to storage.Appendable, logger *slog.Logger) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Writer{cfg: cfg, from: from, to: to, logger: logger, now: time.Now, last: map[string]labels.Labels{}}, nil
}

// Run writes every interval until ctx is cancelled. A failed write is
// logged and tried again the next interval.
func (w *Writer) Run(ctx context.Context) error {
	tick := time.NewTicker(w.cfg.Interval)
	defer tick.Stop()
	for {
		if err := w.Write(ctx); err != nil {
			w.logger.Warn("write the hub's own series into its store", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// Write gathers the registry once and appends its chosen series at the
// current time, with a staleness marker for each series written last time
// and gone now.
func (w *Writer) Write(ctx context.Context) error {
	fams, err := w.from.Gather()
	if err != nil && len(fams) == 0 {
		return fmt.Errorf("gather: %w", err)
	}
	ts := w.now().UnixMilli()
	app := w.to.Appender(ctx)
	next := map[string]labels.Labels{}
	var errs []error
	add := func(l labels.Labels, v float64) {
		if _, err := app.Append(0, l, ts, v); err != nil {
			errs = append(errs, fmt.Errorf("append %s: %w", l, err))
			return
		}
		next[l.String()] = l
	}
	for _, f := range fams {
		if !w.chosen(f.GetName()) {
			continue
		}
		for _, m := range f.GetMetric() {
			samples(f, m, add)
		}
	}
	for k, l := range w.last {
		if _, ok := next[k]; ok {
			continue
		}
		if _, err := app.Append(0, l, ts, math.Float64frombits(value.StaleNaN)); err != nil {
			errs = append(errs, fmt.Errorf("mark %s stale: %w", l, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		_ = app.Rollback()
		return err
	}
	if err := app.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	w.last = next
	return nil
}

func (w *Writer) chosen(name string) bool {
	for _, p := range w.cfg.Prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// samples turns one metric into its series as the text exposition names
// them: a histogram's _bucket (with le), _sum and _count, a summary's
// quantiles, _sum and _count.
func samples(f *dto.MetricFamily, m *dto.Metric, add func(labels.Labels, float64)) {
	name := f.GetName()
	lset := func(metric string, extra ...string) labels.Labels {
		b := labels.NewScratchBuilder(len(m.GetLabel()) + 2)
		b.Add(model.MetricNameLabel, metric)
		for _, lp := range m.GetLabel() {
			b.Add(lp.GetName(), lp.GetValue())
		}
		for i := 0; i+1 < len(extra); i += 2 {
			b.Add(extra[i], extra[i+1])
		}
		b.Sort()
		return b.Labels()
	}
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		add(lset(name), m.GetCounter().GetValue())
	case dto.MetricType_GAUGE:
		add(lset(name), m.GetGauge().GetValue())
	case dto.MetricType_UNTYPED:
		add(lset(name), m.GetUntyped().GetValue())
	case dto.MetricType_HISTOGRAM:
		h := m.GetHistogram()
		inf := false
		for _, b := range h.GetBucket() {
			inf = inf || math.IsInf(b.GetUpperBound(), 1)
			add(lset(name+"_bucket", "le", formatFloat(b.GetUpperBound())), float64(b.GetCumulativeCount()))
		}
		if !inf {
			add(lset(name+"_bucket", "le", "+Inf"), float64(h.GetSampleCount()))
		}
		add(lset(name+"_sum"), h.GetSampleSum())
		add(lset(name+"_count"), float64(h.GetSampleCount()))
	case dto.MetricType_SUMMARY:
		s := m.GetSummary()
		for _, q := range s.GetQuantile() {
			add(lset(name, "quantile", formatFloat(q.GetQuantile())), q.GetValue())
		}
		add(lset(name+"_sum"), s.GetSampleSum())
		add(lset(name+"_count"), float64(s.GetSampleCount()))
	}
}

func formatFloat(v float64) string {
	if math.IsInf(v, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
