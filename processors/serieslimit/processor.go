package serieslimit

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/fleetpulse/fleetpulse/processors/serieslimit/internal/metadata"
)

// Reasons a point is dropped, as the reason attribute of the dropped counter.
const (
	reasonNotAllowed = "not_allowed"
	reasonOverLimit  = "over_limit"
)

type limiter struct {
	cfg              *Config
	include, exclude []*regexp.Regexp
	dropped          metric.Int64Counter
	now              func() time.Time

	mu     sync.Mutex
	series map[string]map[uint64]time.Time // metric name -> series hash -> last seen
	names  map[string]bool                 // allow decision per metric name
}

func newLimiter(cfg *Config, set component.TelemetrySettings) (*limiter, error) {
	tb, err := metadata.NewTelemetryBuilder(set)
	if err != nil {
		return nil, fmt.Errorf("create the processor's telemetry: %w", err)
	}
	return &limiter{
		cfg: cfg, include: compileAll(cfg.Include), exclude: compileAll(cfg.Exclude),
		dropped: tb.SeriesLimitDroppedPoints, now: time.Now,
		series: map[string]map[uint64]time.Time{}, names: map[string]bool{},
	}, nil
}

func (l *limiter) allowed(name string) bool {
	if ok, known := l.names[name]; known {
		return ok
	}
	ok := len(l.include) == 0
	for _, re := range l.include {
		if re.MatchString(name) {
			ok = true
			break
		}
	}
	for _, re := range l.exclude {
		if re.MatchString(name) {
			ok = false
		}
	}
	l.names[name] = ok
	return ok
}

// admit reports whether a point of series h of metric name may pass.
func (l *limiter) admit(name string, h uint64, now time.Time) bool {
	set := l.series[name]
	if set == nil {
		set = map[uint64]time.Time{}
		l.series[name] = set
	}
	if _, known := set[h]; known || l.cfg.MaxSeriesPerMetric == 0 || len(set) < l.cfg.MaxSeriesPerMetric {
		set[h] = now
		return true
	}
	// Full: free the slots of series gone quiet, then try once more.
	for k, seen := range set {
		if now.Sub(seen) > l.cfg.SeriesTTL {
			delete(set, k)
		}
	}
	if len(set) < l.cfg.MaxSeriesPerMetric {
		set[h] = now
		return true
	}
	return false
}

func (l *limiter) processMetrics(ctx context.Context, md pmetric.Metrics) (pmetric.Metrics, error) {
	notAllowed, overLimit := int64(0), int64(0)
	now := l.now()
	l.mu.Lock()
	md.ResourceMetrics().RemoveIf(func(rm pmetric.ResourceMetrics) bool {
		resHash := hashAttrs(xxhash.New(), rm.Resource().Attributes())
		rm.ScopeMetrics().RemoveIf(func(sm pmetric.ScopeMetrics) bool {
			sm.Metrics().RemoveIf(func(m pmetric.Metric) bool {
				if !l.allowed(m.Name()) {
					notAllowed += int64(pointCount(m))
					return true
				}
				overLimit += int64(l.filterPoints(m, resHash, now))
				return pointCount(m) == 0
			})
			return sm.Metrics().Len() == 0
		})
		return rm.ScopeMetrics().Len() == 0
	})
	l.mu.Unlock()
	if notAllowed > 0 {
		l.dropped.Add(ctx, notAllowed, metric.WithAttributes(attribute.String("reason", reasonNotAllowed)))
	}
	if overLimit > 0 {
		l.dropped.Add(ctx, overLimit, metric.WithAttributes(attribute.String("reason", reasonOverLimit)))
	}
	return md, nil
}

// filterPoints removes the points of series over the cap and returns how many.
func (l *limiter) filterPoints(m pmetric.Metric, resHash uint64, now time.Time) int {
	n := 0
	keep := func(attrs pcommon.Map) bool {
		d := xxhash.New()
		var b [8]byte
		for i := range b {
			b[i] = byte(resHash >> (8 * i))
		}
		_, _ = d.Write(b[:])
		if l.admit(m.Name(), hashAttrs(d, attrs), now) {
			return true
		}
		n++
		return false
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		m.Gauge().DataPoints().RemoveIf(func(p pmetric.NumberDataPoint) bool { return !keep(p.Attributes()) })
	case pmetric.MetricTypeSum:
		m.Sum().DataPoints().RemoveIf(func(p pmetric.NumberDataPoint) bool { return !keep(p.Attributes()) })
	case pmetric.MetricTypeHistogram:
		m.Histogram().DataPoints().RemoveIf(func(p pmetric.HistogramDataPoint) bool { return !keep(p.Attributes()) })
	case pmetric.MetricTypeExponentialHistogram:
		m.ExponentialHistogram().DataPoints().RemoveIf(func(p pmetric.ExponentialHistogramDataPoint) bool { return !keep(p.Attributes()) })
	case pmetric.MetricTypeSummary:
		m.Summary().DataPoints().RemoveIf(func(p pmetric.SummaryDataPoint) bool { return !keep(p.Attributes()) })
	}
	return n
}

func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

// hashAttrs hashes attributes in key order into d.
func hashAttrs(d *xxhash.Digest, attrs pcommon.Map) uint64 {
	keys := make([]string, 0, attrs.Len())
	attrs.Range(func(k string, _ pcommon.Value) bool { keys = append(keys, k); return true })
	sort.Strings(keys)
	for _, k := range keys {
		v, _ := attrs.Get(k)
		_, _ = d.WriteString(k)
		_, _ = d.Write([]byte{0xff})
		_, _ = d.WriteString(v.AsString())
		_, _ = d.Write([]byte{0xfe})
	}
	return d.Sum64()
}
