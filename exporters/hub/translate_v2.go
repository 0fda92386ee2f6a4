package hub

import (
	"github.com/prometheus/otlptranslator"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// toWriteV2 converts md into one Prometheus remote-write 2.0 request: the
// series and samples toTimeSeries gives (same labels, same order), with every
// label name and value, unit and help interned once in the request's symbol
// table, and each series carrying its metric's metadata: type (gauge,
// counter, histogram, summary, as Prometheus' own OTLP translation types
// them), unit (as Prometheus names it: "bytes", "seconds"; "" for "1" and
// annotations) and help (the OTLP description). It also returns the number
// of samples in the request, which the receiver's written count is checked
// against.
func toWriteV2(md pmetric.Metrics) (*writev2.Request, int, drops) {
	c := newConverter(md.DataPointCount())
	c.convert(md)
	req, samples := c.writeV2()
	return req, samples, c.dropped
}

// writeV2 re-encodes the converted series as a 2.0 request. Label references
// and samples of all series share one backing array each.
func (c *converter) writeV2() (*writev2.Request, int) {
	var nLabels, nSamples int
	for _, s := range c.series {
		nLabels += len(s.Labels)
		nSamples += len(s.Samples)
	}
	symbols := writev2.NewSymbolTable()
	refs := make([]uint32, 0, 2*nLabels)
	samples := make([]writev2.Sample, 0, nSamples)
	series := make([]writev2.TimeSeries, len(c.series))
	metas := make([]writev2.Metadata, len(c.metas))
	symbolized := make([]bool, len(c.metas))
	var units otlptranslator.UnitNamer
	for i, s := range c.series {
		r0 := len(refs)
		for _, l := range s.Labels {
			refs = append(refs, symbols.Symbolize(l.Name), symbols.Symbolize(l.Value))
		}
		s0 := len(samples)
		for _, p := range s.Samples {
			samples = append(samples, writev2.Sample{Value: p.Value, Timestamp: p.Timestamp})
		}
		m := c.seriesMeta[i]
		if !symbolized[m] {
			meta := c.metas[m]
			metas[m] = writev2.Metadata{
				Type:    meta.typ,
				UnitRef: symbols.Symbolize(units.Build(meta.metric.Unit())),
				HelpRef: symbols.Symbolize(meta.metric.Description()),
			}
			symbolized[m] = true
		}
		series[i] = writev2.TimeSeries{
			LabelsRefs: refs[r0:len(refs):len(refs)],
			Samples:    samples[s0:len(samples):len(samples)],
			Metadata:   metas[m],
		}
	}
	return &writev2.Request{Symbols: symbols.Symbols(), Timeseries: series}, nSamples
}
