package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"

	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb/prompb"

	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// The per-request limits are checked on what each path decodes anyway,
// before anything is appended: rw1.go and rw2.go right after decoding (a
// comparison per label, before their UTF-8 checks read every byte of a
// long value), Prometheus's path by decoding the request once more first
// (checkPrometheusPath), which costs that path, taken by histograms and
// exemplars, a second decoding.

// checkRW1 checks a decoded remote-write 1.0 request against c's limits.
func checkRW1(c *limits.Cluster, series []prompb.TimeSeries) *limits.Refusal {
	b := c.Bounds()
	if len(series) > b.SeriesPerRequest {
		return c.Refuse(limits.SeriesPerRequest, fmt.Sprintf("the request has %d series", len(series)))
	}
	samples := 0
	for i := range series {
		ts := &series[i]
		samples += len(ts.Samples) + len(ts.Exemplars) + len(ts.Histograms)
		if len(ts.Labels) > b.LabelsPerSeries {
			return c.Refuse(limits.LabelsPerSeries, fmt.Sprintf("a series of metric %s has %d labels", metricOfV1(ts.Labels), len(ts.Labels)))
		}
		for _, l := range ts.Labels {
			if len(l.Name) > b.LabelNameLength || len(l.Value) > b.LabelValueLength {
				return refuseLabel(c, b, metricOfV1(ts.Labels), l.Name, l.Value)
			}
		}
	}
	if samples > b.SamplesPerRequest {
		return c.Refuse(limits.SamplesPerRequest, fmt.Sprintf("the request has %d samples, exemplars and histograms", samples))
	}
	return nil
}

// checkRW2 checks a request decoded by rw2.go against c's limits. A
// reference outside the symbols is not checked: prepare hands the request
// to Prometheus's path, which checks it.
func checkRW2(c *limits.Cluster, req *rw2Request) *limits.Refusal {
	b := c.Bounds()
	if len(req.series) > b.SeriesPerRequest {
		return c.Refuse(limits.SeriesPerRequest, fmt.Sprintf("the request has %d series", len(req.series)))
	}
	samples := 0
	for i := range req.series {
		s := &req.series[i]
		samples += len(s.samples)
		if err := checkRefs(c, b, s.refs, req.symbols); err != nil {
			return err
		}
	}
	if samples > b.SamplesPerRequest {
		return c.Refuse(limits.SamplesPerRequest, fmt.Sprintf("the request has %d samples", samples))
	}
	return nil
}

// checkRefs checks one remote-write 2.0 series' labels, given as
// name-value pairs of symbol references.
func checkRefs(c *limits.Cluster, b *limits.Bounds, refs []uint32, symbols []string) *limits.Refusal {
	if len(refs)/2 > b.LabelsPerSeries {
		return c.Refuse(limits.LabelsPerSeries, fmt.Sprintf("a series of metric %s has %d labels", metricOfRefs(refs, symbols), len(refs)/2))
	}
	nsym := uint32(len(symbols))
	for j := 0; j+1 < len(refs); j += 2 {
		if refs[j] >= nsym || refs[j+1] >= nsym {
			continue
		}
		name, value := symbols[refs[j]], symbols[refs[j+1]]
		if len(name) > b.LabelNameLength || len(value) > b.LabelValueLength {
			return refuseLabel(c, b, metricOfRefs(refs, symbols), name, value)
		}
	}
	return nil
}

func refuseLabel(c *limits.Cluster, b *limits.Bounds, metric, name, value string) *limits.Refusal {
	if len(name) > b.LabelNameLength {
		return c.Refuse(limits.LabelNameLength, fmt.Sprintf("a series of metric %s has a label name of %d bytes (%s)", metric, len(name), quoteShort(name)))
	}
	return c.Refuse(limits.LabelValueLength, fmt.Sprintf("a series of metric %s has a value of %d bytes for label %s", metric, len(value), quoteShort(name)))
}

// quoteShort quotes s, cut to 64 bytes: a refusal names what was too long
// without echoing it.
func quoteShort(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

func metricOfV1(ls []labelpb.ZLabel) string {
	for _, l := range ls {
		if l.Name == model.MetricNameLabel {
			return quoteShort(l.Value)
		}
	}
	return `""`
}

func metricOfRefs(refs []uint32, symbols []string) string {
	for j := 0; j+1 < len(refs); j += 2 {
		if refs[j] < uint32(len(symbols)) && refs[j+1] < uint32(len(symbols)) && symbols[refs[j]] == model.MetricNameLabel {
			return quoteShort(symbols[refs[j+1]])
		}
	}
	return `""`
}

// checkNewSeries refuses a request whose new series would take the cluster
// past its head-series limit. Only near the limit (n series more could
// pass it) does it look the series up (labels(i) gives the i-th series'
// labels, sorted and stamped, or none for a series known to exist) to count
// the new ones.
func checkNewSeries(ctx context.Context, c *limits.Cluster, app storage.Appender, n int, labelsOf func(i int) labels.Labels) *limits.Refusal {
	if c.MayCreate(n) {
		return nil
	}
	getRef := refsOf(app)
	created := 0
	for i := range n {
		lset := labelsOf(i)
		if lset.IsEmpty() {
			continue // known to exist
		}
		if ref, _ := getRef.GetRef(lset, lset.Hash()); ref == 0 {
			created++
		}
	}
	return c.AllowCreate(ctx, created)
}

// overLimitsRW1 refuses a request rw1.go decoded that is over the
// cluster's per-request limits.
func (h *handler) overLimitsRW1(w http.ResponseWriter, app storage.Appender, cluster string, series []prompb.TimeSeries) bool {
	return h.refuse(w, app, checkRW1(h.limits.For(context.Background(), cluster), series))
}

// overHeadSeriesRW1 refuses a request rw1.go prepared (its labels sorted
// and stamped, but for series it resolved: refs[i] has their reference)
// whose new series would take the cluster past its limit.
func (h *handler) overHeadSeriesRW1(w http.ResponseWriter, app storage.Appender, cluster string, series []prompb.TimeSeries, refs []resolved) bool {
	c := h.limits.For(context.Background(), cluster)
	return h.refuse(w, app, checkNewSeries(context.Background(), c, app, len(series),
		func(i int) labels.Labels {
			if refs[i].ref != 0 {
				return labels.EmptyLabels()
			}
			return labelpb.ZLabelsToPromLabels(series[i].Labels)
		}))
}

// overLimitsRW2 is overLimitsRW1 for rw2.go.
func (h *handler) overLimitsRW2(w http.ResponseWriter, app storage.Appender, cluster string, req *rw2Request) bool {
	return h.refuse(w, app, checkRW2(h.limits.For(context.Background(), cluster), req))
}

// overHeadSeriesRW2 is overHeadSeriesRW1 for rw2.go.
func (h *handler) overHeadSeriesRW2(w http.ResponseWriter, app storage.Appender, cluster string, req *rw2Request) bool {
	c := h.limits.For(context.Background(), cluster)
	return h.refuse(w, app, checkNewSeries(context.Background(), c, app, len(req.series),
		func(i int) labels.Labels { return labelpb.ZLabelsToPromLabels(req.series[i].labels) }))
}

// refuse answers a refusal, if there is one, rolling app back: nothing of
// a refused request is appended.
func (h *handler) refuse(w http.ResponseWriter, app storage.Appender, err *limits.Refusal) bool {
	if err == nil {
		return false
	}
	if app != nil {
		_ = app.Rollback()
	}
	h.logger.Debug("refused a remote write request for a limit", "cluster", err.Cluster, "limit", err.Limit, "err", err)
	if err.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
	}
	http.Error(w, err.Error(), err.Status)
	return true
}

// checkDecodedSize refuses, from the snappy header alone, a body that
// would decompress past the cluster's limit. A body whose header does not
// parse is left to the paths, which answer it as Prometheus does.
func checkDecodedSize(c *limits.Cluster, compressed []byte) *limits.Refusal {
	n, err := snappy.DecodedLen(compressed)
	if err != nil || n <= c.Bounds().DecompressedBytes {
		return nil
	}
	return c.Refuse(limits.DecompressedBytes, fmt.Sprintf("the request decompresses to %d bytes", n))
}

// checkPrometheusPath checks a request for Prometheus's handler against
// c's limits, decoding it as that handler will, and counts the series it
// would create. A body that does not decode is left to that handler to
// refuse.
func checkPrometheusPath(ctx context.Context, c *limits.Cluster, app storage.Appender, v2 bool, compressed []byte) (created int, refusal *limits.Refusal) {
	buf, err := snappy.Decode(nil, compressed)
	if err != nil {
		return 0, nil
	}
	var sets []labels.Labels
	counting := c.Limits().HeadSeries > 0
	b := labels.NewScratchBuilder(16)
	if v2 {
		var req writev2.Request
		if req.Unmarshal(buf) != nil {
			return 0, nil
		}
		if refusal = checkWriteV2(c, &req); refusal != nil {
			return 0, refusal
		}
		for i := 0; counting && i < len(req.Timeseries); i++ {
			refs := req.Timeseries[i].LabelsRefs
			b.Reset()
			for j := 0; j+1 < len(refs); j += 2 {
				if refs[j] >= uint32(len(req.Symbols)) || refs[j+1] >= uint32(len(req.Symbols)) {
					return 0, nil // Prometheus's handler refuses the series
				}
				addWriterLabel(&b, req.Symbols[refs[j]], req.Symbols[refs[j+1]])
			}
			sets = append(sets, stamped(&b, c.Name()))
		}
	} else {
		series, err := decodeSeries(buf)
		if err != nil {
			return 0, nil
		}
		if refusal = checkRW1(c, series); refusal != nil {
			return 0, refusal
		}
		for i := 0; counting && i < len(series); i++ {
			b.Reset()
			for _, l := range series[i].Labels {
				addWriterLabel(&b, l.Name, l.Value)
			}
			sets = append(sets, stamped(&b, c.Name()))
		}
	}
	if !counting {
		return 0, nil
	}
	getRef := refsOf(app)
	for _, lset := range sets {
		if ref, _ := getRef.GetRef(lset, lset.Hash()); ref == 0 {
			created++
		}
	}
	return created, c.AllowCreate(ctx, created)
}

// addWriterLabel adds a writer's label but those the store sets (cluster)
// or drops (the shard label).
func addWriterLabel(b *labels.ScratchBuilder, name, value string) {
	if name != metricstore.ClusterLabel && name != metricstore.ShardLabel {
		b.Add(name, value)
	}
}

// stamped is the builder's labels as the store keeps them: with the
// cluster's label, sorted.
func stamped(b *labels.ScratchBuilder, cluster string) labels.Labels {
	b.Add(metricstore.ClusterLabel, cluster)
	b.Sort()
	return b.Labels()
}

// checkWriteV2 checks a remote-write 2.0 request decoded as Prometheus's
// handler decodes it.
func checkWriteV2(c *limits.Cluster, req *writev2.Request) *limits.Refusal {
	b := c.Bounds()
	if len(req.Timeseries) > b.SeriesPerRequest {
		return c.Refuse(limits.SeriesPerRequest, fmt.Sprintf("the request has %d series", len(req.Timeseries)))
	}
	samples := 0
	for i := range req.Timeseries {
		ts := &req.Timeseries[i]
		samples += len(ts.Samples) + len(ts.Exemplars) + len(ts.Histograms)
		if err := checkRefs(c, b, ts.LabelsRefs, req.Symbols); err != nil {
			return err
		}
	}
	if samples > b.SamplesPerRequest {
		return c.Refuse(limits.SamplesPerRequest, fmt.Sprintf("the request has %d samples, exemplars and histograms", samples))
	}
	return nil
}

// isTooLarge reports a body read past its MaxBytesReader.
func isTooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}
