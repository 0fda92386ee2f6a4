package hub

import (
	"cmp"
	"hash/maphash"
	"math"
	"slices"
	"strconv"

	"github.com/prometheus/otlptranslator"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// This file turns OTLP metrics into Prometheus remote-write series (1.0
// here; translate_v2.go re-encodes them as a 2.0 request). It
// replaces the contrib prometheusremotewrite translator, whose dependency on
// Prometheus' config package linked the AWS, Azure and GCP SDKs into the agent
// (tens of MiB of binary and of resident file pages). Names come from the
// Prometheus project's own otlptranslator, configured as that translator
// configured it (AddMetricSuffixes, no UTF-8, the default 'key_' sanitisation
// of labels starting with one underscore), so series keep their names.
//
// What is sent:
//   - Gauge, and cumulative Sum (monotonic ones named ..._total); int and
//     double points alike.
//   - cumulative Histogram as classic buckets: name_bucket{le=...} including
//     le="+Inf" (= count), name_sum (when the point has a sum), name_count.
//   - Summary: name{quantile=...}, name_sum, name_count.
//
// What is not sent, counted per reason (see dropReason): delta (or
// unspecified) temporality sums and histograms, which Prometheus cannot store
// as counters; exponential histograms, which remote write (1.0 or 2.0)
// carries only as native histograms (the agent produces none); points whose
// metric or label names cannot be made valid. Exemplars, start (created)
// timestamps and target_info are not sent.
//
// Every point attribute becomes a label; the exporter's resourcetotelemetry
// wrapper has already copied the resource attributes onto the points. As in
// Prometheus' OTLP translation, the resource's service.name (prefixed by
// "service.namespace/") also gives the job label and service.instance.id the
// instance label.

// staleNaN is Prometheus' stale marker (model/value.StaleNaN), sent for points
// flagged NoRecordedValue.
const staleNaN uint64 = 0x7ff0000000000002

const (
	labelMetricName = "__name__"
	labelLe         = "le"
	labelQuantile   = "quantile"
	labelJob        = "job"
	labelInstance   = "instance"
	attrServiceName = "service.name"
	attrServiceNS   = "service.namespace"
	attrServiceInst = "service.instance.id"
)

// dropReason says why points were not sent.
type dropReason int

const (
	dropNonCumulativeSum dropReason = iota
	dropNonCumulativeHistogram
	dropExponentialHistogram
	dropUnsupportedType
	dropInvalidMetricName
	dropInvalidLabelName
	numDropReasons
)

func (r dropReason) String() string {
	return [...]string{
		dropNonCumulativeSum:       "delta or unspecified temporality sum",
		dropNonCumulativeHistogram: "delta or unspecified temporality histogram",
		dropExponentialHistogram:   "exponential histogram (needs native histograms)",
		dropUnsupportedType:        "unsupported metric type",
		dropInvalidMetricName:      "metric name cannot be made valid",
		dropInvalidLabelName:       "attribute name cannot be made a valid label name",
	}[r]
}

// drops counts the points not sent, per reason, with one metric name each.
type drops struct {
	points  [numDropReasons]int
	example [numDropReasons]string
}

func (d *drops) add(r dropReason, metric string, points int) {
	if points <= 0 {
		return
	}
	d.points[r] += points
	if d.example[r] == "" {
		d.example[r] = metric
	}
}

// total is the number of points dropped for any reason.
func (d *drops) total() int {
	n := 0
	for _, p := range d.points {
		n += p
	}
	return n
}

// converter builds the series of one request. Points with the same label set
// (same name, same labels) share one series, their samples in input order.
type converter struct {
	series []prompb.TimeSeries
	// index maps a label-set hash to the series' position (+1); a hash that
	// two different label sets share lists the others in collisions.
	index      map[uint64]int
	collisions map[uint64][]int
	seed       maphash.Seed
	dropped    drops

	metricNamer otlptranslator.MetricNamer
	labelNamer  otlptranslator.LabelNamer
	// labelNames caches sanitised attribute names ("" when invalid): a batch
	// repeats the same few names on every point.
	labelNames map[string]string
	// scratch for the labels of one point
	attrs []prompb.Label

	// metas holds, per metric converted, what remote write 2.0 sends as
	// metadata; seriesMeta is, per series, the index in metas of the metric
	// whose point started it; meta is that index for the metric at hand.
	metas      []metricMeta
	seriesMeta []int32
	meta       int32
}

// metricMeta is an OTLP metric's remote-write 2.0 metadata: the Prometheus
// type, decided while converting; unit and help are read from metric only
// when a 2.0 request is built.
type metricMeta struct {
	typ    writev2.Metadata_MetricType
	metric pmetric.Metric
}

func newConverter(sizeHint int) *converter {
	return &converter{
		series:      make([]prompb.TimeSeries, 0, sizeHint),
		index:       make(map[uint64]int, sizeHint),
		seed:        maphash.MakeSeed(),
		metricNamer: otlptranslator.MetricNamer{WithMetricSuffixes: true},
		// The contrib translator prefixed 'key' to names starting with one
		// underscore (its PermissiveLabelSanitization gate being off): kept,
		// so that such labels keep their names.
		//lint:ignore SA1019 deprecated, but needed for the names sent so far.
		labelNamer: otlptranslator.LabelNamer{UnderscoreLabelSanitization: true},
		labelNames: map[string]string{},
	}
}

// toTimeSeries converts md into remote-write series, with label names sorted
// in each, series in the order their first point appears. It reports what it
// could not convert rather than failing: the rest is still worth sending.
func toTimeSeries(md pmetric.Metrics) ([]prompb.TimeSeries, drops) {
	c := newConverter(md.DataPointCount())
	c.convert(md)
	return c.series, c.dropped
}

// convert adds every point of md.
func (c *converter) convert(md pmetric.Metrics) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		resource := rm.Resource().Attributes()
		sms := rm.ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				c.addMetric(resource, ms.At(k))
			}
		}
	}
}

func (c *converter) addMetric(resource pcommon.Map, m pmetric.Metric) {
	spec := otlptranslator.Metric{Name: m.Name(), Unit: m.Unit()}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		spec.Type = otlptranslator.MetricTypeGauge
	case pmetric.MetricTypeSum:
		if m.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			c.dropped.add(dropNonCumulativeSum, m.Name(), m.Sum().DataPoints().Len())
			return
		}
		spec.Type = otlptranslator.MetricTypeNonMonotonicCounter
		if m.Sum().IsMonotonic() {
			spec.Type = otlptranslator.MetricTypeMonotonicCounter
		}
	case pmetric.MetricTypeHistogram:
		if m.Histogram().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			c.dropped.add(dropNonCumulativeHistogram, m.Name(), m.Histogram().DataPoints().Len())
			return
		}
		spec.Type = otlptranslator.MetricTypeHistogram
	case pmetric.MetricTypeSummary:
		spec.Type = otlptranslator.MetricTypeSummary
	case pmetric.MetricTypeExponentialHistogram:
		c.dropped.add(dropExponentialHistogram, m.Name(), m.ExponentialHistogram().DataPoints().Len())
		return
	default:
		c.dropped.add(dropUnsupportedType, m.Name(), 1)
		return
	}
	name, err := c.metricNamer.Build(spec)
	if err != nil || name == "" {
		c.dropped.add(dropInvalidMetricName, m.Name(), dataPointCount(m))
		return
	}
	// The types Prometheus' own OTLP translation gives: a non-monotonic sum
	// is a gauge; a histogram's _bucket, _sum and _count are all histogram.
	typ := writev2.Metadata_METRIC_TYPE_GAUGE
	switch spec.Type {
	case otlptranslator.MetricTypeMonotonicCounter:
		typ = writev2.Metadata_METRIC_TYPE_COUNTER
	case otlptranslator.MetricTypeHistogram:
		typ = writev2.Metadata_METRIC_TYPE_HISTOGRAM
	case otlptranslator.MetricTypeSummary:
		typ = writev2.Metadata_METRIC_TYPE_SUMMARY
	}
	c.meta = int32(len(c.metas))
	c.metas = append(c.metas, metricMeta{typ: typ, metric: m})

	switch m.Type() {
	case pmetric.MetricTypeGauge:
		c.addNumberPoints(resource, m.Name(), name, m.Gauge().DataPoints())
	case pmetric.MetricTypeSum:
		c.addNumberPoints(resource, m.Name(), name, m.Sum().DataPoints())
	case pmetric.MetricTypeHistogram:
		c.addHistogramPoints(resource, m.Name(), name, m.Histogram().DataPoints())
	case pmetric.MetricTypeSummary:
		c.addSummaryPoints(resource, m.Name(), name, m.Summary().DataPoints())
	}
}

func (c *converter) addNumberPoints(resource pcommon.Map, metric, name string, pts pmetric.NumberDataPointSlice) {
	for i := 0; i < pts.Len(); i++ {
		pt := pts.At(i)
		if !c.pointLabels(resource, pt.Attributes()) {
			c.dropped.add(dropInvalidLabelName, metric, 1)
			continue
		}
		var v float64
		switch pt.ValueType() {
		case pmetric.NumberDataPointValueTypeInt:
			v = float64(pt.IntValue())
		case pmetric.NumberDataPointValueTypeDouble:
			v = pt.DoubleValue()
		}
		c.add(name, "", "", sample(v, pt.Timestamp(), pt.Flags()))
	}
}

func (c *converter) addHistogramPoints(resource pcommon.Map, metric, name string, pts pmetric.HistogramDataPointSlice) {
	for i := 0; i < pts.Len(); i++ {
		pt := pts.At(i)
		if !c.pointLabels(resource, pt.Attributes()) {
			c.dropped.add(dropInvalidLabelName, metric, 1)
			continue
		}
		ts, flags := pt.Timestamp(), pt.Flags()
		if pt.HasSum() {
			c.add(name+"_sum", "", "", sample(pt.Sum(), ts, flags))
		}
		c.add(name+"_count", "", "", sample(float64(pt.Count()), ts, flags))
		// OTLP buckets are per interval, with one more count than bounds (the
		// last is (bound_n, +Inf)); Prometheus buckets are cumulative.
		bounds, counts := pt.ExplicitBounds(), pt.BucketCounts()
		var cumulative uint64
		for b := 0; b < bounds.Len() && b < counts.Len(); b++ {
			cumulative += counts.At(b)
			le := strconv.FormatFloat(bounds.At(b), 'f', -1, 64)
			c.add(name+"_bucket", labelLe, le, sample(float64(cumulative), ts, flags))
		}
		c.add(name+"_bucket", labelLe, "+Inf", sample(float64(pt.Count()), ts, flags))
	}
}

func (c *converter) addSummaryPoints(resource pcommon.Map, metric, name string, pts pmetric.SummaryDataPointSlice) {
	for i := 0; i < pts.Len(); i++ {
		pt := pts.At(i)
		if !c.pointLabels(resource, pt.Attributes()) {
			c.dropped.add(dropInvalidLabelName, metric, 1)
			continue
		}
		ts, flags := pt.Timestamp(), pt.Flags()
		c.add(name+"_sum", "", "", sample(pt.Sum(), ts, flags))
		c.add(name+"_count", "", "", sample(float64(pt.Count()), ts, flags))
		qs := pt.QuantileValues()
		for q := 0; q < qs.Len(); q++ {
			quantile := strconv.FormatFloat(qs.At(q).Quantile(), 'f', -1, 64)
			c.add(name, labelQuantile, quantile, sample(qs.At(q).Value(), ts, flags))
		}
	}
}

// sample is one remote-write sample: the timestamp in milliseconds, the
// stale marker for a point with no recorded value.
func sample(v float64, ts pcommon.Timestamp, flags pmetric.DataPointFlags) prompb.Sample {
	if flags.NoRecordedValue() {
		v = math.Float64frombits(staleNaN)
	}
	return prompb.Sample{Value: v, Timestamp: int64(ts) / 1e6}
}

// pointLabels sets c.attrs to the point's labels without the metric name,
// sorted by name: attribute names sanitised; attributes whose sanitised names
// collide are joined, in the order of their original names, with ';' (a value
// equal to the one already there is not repeated), as Prometheus does; then
// job and instance from the resource's service attributes. It reports false
// when an attribute name cannot be made a label name.
func (c *converter) pointLabels(resource, attrs pcommon.Map) bool {
	raw := c.attrs[:0]
	for k, v := range attrs.All() {
		raw = append(raw, prompb.Label{Name: k, Value: v.AsString()})
	}
	slices.SortStableFunc(raw, byName)
	for i := range raw {
		name := c.labelName(raw[i].Name)
		if name == "" {
			c.attrs = raw
			return false
		}
		raw[i].Name = name
	}
	// Stable: labels with the same sanitised name stay in original-name order.
	slices.SortStableFunc(raw, byName)
	out := raw[:0]
	for _, l := range raw {
		if n := len(out); n > 0 && out[n-1].Name == l.Name {
			if out[n-1].Value != l.Value {
				out[n-1].Value += ";" + l.Value
			}
			continue
		}
		out = append(out, l)
	}
	if svc, ok := resource.Get(attrServiceName); ok {
		job := svc.AsString()
		if ns, ok := resource.Get(attrServiceNS); ok {
			job = ns.AsString() + "/" + job
		}
		out = setLabel(out, labelJob, job)
	}
	if inst, ok := resource.Get(attrServiceInst); ok {
		out = setLabel(out, labelInstance, inst.AsString())
	}
	c.attrs = out
	return true
}

// labelName is the label name for an attribute name, "" if there is none.
func (c *converter) labelName(attr string) string {
	name, ok := c.labelNames[attr]
	if !ok {
		var err error
		if name, err = c.labelNamer.Build(attr); err != nil {
			name = ""
		}
		c.labelNames[attr] = name
	}
	return name
}

// add appends s to the series named name with c.attrs and, when extra is set,
// the label extra=extraValue; __name__ and extra override attributes of the
// same name (a series cannot carry a label name twice).
func (c *converter) add(name, extra, extraValue string, s prompb.Sample) {
	n := len(c.attrs) + 1
	if extra != "" {
		n++
	}
	labels := make([]prompb.Label, len(c.attrs), n)
	copy(labels, c.attrs)
	labels = setLabel(labels, labelMetricName, name)
	if extra != "" {
		labels = setLabel(labels, extra, extraValue)
	}

	var h maphash.Hash
	h.SetSeed(c.seed)
	for _, l := range labels {
		h.WriteString(l.Name)
		h.WriteByte(0xff)
		h.WriteString(l.Value)
		h.WriteByte(0xff)
	}
	key := h.Sum64()
	if pos := c.index[key]; pos > 0 {
		if sameLabels(c.series[pos-1].Labels, labels) {
			c.series[pos-1].Samples = append(c.series[pos-1].Samples, s)
			return
		}
		for _, p := range c.collisions[key] {
			if sameLabels(c.series[p].Labels, labels) {
				c.series[p].Samples = append(c.series[p].Samples, s)
				return
			}
		}
		if c.collisions == nil {
			c.collisions = map[uint64][]int{}
		}
		c.collisions[key] = append(c.collisions[key], len(c.series))
	} else {
		c.index[key] = len(c.series) + 1
	}
	c.series = append(c.series, prompb.TimeSeries{Labels: labels, Samples: []prompb.Sample{s}})
	c.seriesMeta = append(c.seriesMeta, c.meta)
}

// setLabel sets name=value in labels, sorted by name, keeping them sorted.
func setLabel(labels []prompb.Label, name, value string) []prompb.Label {
	i, found := slices.BinarySearchFunc(labels, name, func(l prompb.Label, n string) int { return cmp.Compare(l.Name, n) })
	if found {
		labels[i].Value = value
		return labels
	}
	return slices.Insert(labels, i, prompb.Label{Name: name, Value: value})
}

func sameLabels(a, b []prompb.Label) bool {
	return slices.EqualFunc(a, b, func(x, y prompb.Label) bool { return x.Name == y.Name && x.Value == y.Value })
}

func byName(a, b prompb.Label) int { return cmp.Compare(a.Name, b.Name) }

func dataPointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	}
	return 0
}
