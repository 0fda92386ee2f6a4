package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gogo/protobuf/proto"
	"github.com/golang/snappy"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb/prompb"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// maxAheadTime is how far past the hub's clock a sample may be, as in
// Prometheus's handler (storage/remote's unexported maxAheadTime).
const maxAheadTime = 10 * time.Minute

// maxDecodedSize bounds the decompressed request as Prometheus's handler
// does (client_golang/exp/api/remote's unexported maxDecodedSize); a larger
// one goes to that handler, which refuses it.
const maxDecodedSize = 32 << 20

// errTooFarAhead is Prometheus's refusal of a sample past maxAheadTime.
var errTooFarAhead = fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)

// writeRW1 stores the snappy-compressed remote-write 1.0 body through app
// and answers, or returns false without appending to app or touching w
// when the request is for Prometheus's handler (the request's metadata,
// given to app, is kept if that handler commits).
//
// It is the hub's own path for remote write 1.0 of float samples, the
// common case. It decodes as Thanos receive does, into Thanos's copy of
// the prompb types, whose labels (labelpb.ZLabel) point into the request's
// bytes instead of being a string allocation each, and appends as Thanos's
// receive Writer does: each series is looked up by its labels' hash
// (storage.GetRef), an existing one is appended to by reference with the
// labels the TSDB holds, and only a new series' labels are copied out of
// the request, so nothing the TSDB keeps points into the request.
//
// Its answers are those of Prometheus's handler (storage/remote v0.309.1,
// remote write 1.0) but for samples the TSDB refuses (out of order,
// duplicate, too old, out of bounds): the rest is committed and the answer
// is 400 naming each, as Prometheus answers 2.0 (partial.go says why); a
// sample more than maxAheadTime ahead of the hub's clock rolls the request
// back with 400, any other failure with 500, and success is 204 without
// X-Prometheus-Remote-Write-*-Written headers (which Prometheus sets for
// 2.0 only). Before anything is appended, a request over the cluster's
// limits is refused whole (limits.go). What it would not
// handle the same way goes to Prometheus's handler, decided by content
// before anything is appended: a body it cannot decompress or decode,
// series with exemplars or native histograms, and series Prometheus skips
// for their labels (no metric name, invalid UTF-8, a label name twice), so
// that those keep Prometheus's answers, logs and counters.
func (h *handler) writeRW1(w http.ResponseWriter, app storage.Appender, cluster string, compressed []byte) bool {
	if n, err := snappy.DecodedLen(compressed); err != nil || n > maxDecodedSize {
		return false
	}
	req := getRW1()
	defer req.release()
	var err error
	if req.buf, err = decompress(req.buf, compressed); err != nil {
		return false
	}
	refs := getResolved()
	defer putResolved(refs)
	cache, epoch := h.refs.forCluster(cluster)
	known, done := cache.known(h.limits.For(context.Background(), cluster).Bounds(), refs)
	series, err := req.decode(refs, known)
	done()
	if err != nil {
		return false
	}
	if h.overLimitsRW1(w, app, cluster, series) {
		return true
	}
	updateMetadataRW1(app, req.buf) // held until app commits, on either path
	if !prepareSeries(series, cluster, refsOf(app), refs.s, refs.hit) {
		return false
	}
	if h.overHeadSeriesRW1(w, app, cluster, series, refs.s) {
		return true
	}
	if err := h.appendSeries(app, series, refs.s); err != nil {
		h.answerError(w, err)
		return true
	}
	cache.add(epoch, refs)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// prepareSeries checks every series before anything is appended and puts
// its labels in the form the TSDB is given them: sorted (as Prometheus's
// handler sorts them) and with cluster="<cluster>" in place of any
// "cluster" label the writer gave (as metricstore's stamp would set it; set
// here, in place and without copying, the series' hash is that of its
// stored labels). It looks each series up in the head (refs[i] is series
// i's reference and stored labels, or zero): a series the head holds has
// the very labels of a series that was checked when it was created, so only
// the others are checked, which spares the common case reading every byte of
// every label. A series the cluster's cache resolved (cached[i]) is neither
// stamped nor looked up: its labels are not read again. It returns false
// when the request is for Prometheus's handler: exemplars, native
// histograms, or labels it would refuse.
func prepareSeries(series []prompb.TimeSeries, cluster string, getRef storage.GetRef, refs []resolved, cached []bool) bool {
	for i := range series {
		ts := &series[i]
		if len(ts.Exemplars) > 0 || len(ts.Histograms) > 0 {
			return false
		}
		if cached[i] {
			continue
		}
		if !sortedByName(ts.Labels) {
			slices.SortFunc(ts.Labels, func(a, b labelpb.ZLabel) int { return strings.Compare(a.Name, b.Name) })
		}
		var ok bool
		ts.Labels, refs[i], ok = prepareLabels(ts.Labels, cluster, getRef)
		if !ok {
			return false
		}
	}
	return true
}

// resolved is a series the head holds: its reference and stored labels.
type resolved struct {
	ref  storage.SeriesRef
	lset labels.Labels
}

// prepareLabels stamps sorted labels zl, looks the stamped series up, and
// checks the labels of a series the head does not hold as Prometheus's
// handler checks them (a metric name, valid UTF-8, no name twice) and for a
// shard label (for metricstore's stamp to drop). The stamp replaces the
// value of a cluster label the writer gave: a replaced value is checked
// whatever the lookup finds.
func prepareLabels(zl []labelpb.ZLabel, cluster string, getRef storage.GetRef) ([]labelpb.ZLabel, resolved, bool) {
	i, found := slices.BinarySearchFunc(zl, metricstore.ClusterLabel, func(l labelpb.ZLabel, name string) int { return strings.Compare(l.Name, name) })
	if found && zl[i].Value != cluster && !utf8.ValidString(zl[i].Value) {
		return zl, resolved{}, false
	}
	stamped := stampCluster(zl, cluster)
	lset := labelpb.ZLabelsToPromLabels(stamped)
	if ref, stored := getRef.GetRef(lset, lset.Hash()); ref != 0 {
		return stamped, resolved{ref, stored}, true
	}
	// The stamped labels pass where the written ones do: the stamp's
	// label is valid, and a name twice stays twice.
	if !lset.Has(model.MetricNameLabel) || !lset.IsValid(model.UTF8Validation) {
		return stamped, resolved{}, false
	}
	if _, dup := lset.HasDuplicateLabelNames(); dup || lset.Has(metricstore.ShardLabel) {
		return stamped, resolved{}, false
	}
	return stamped, resolved{}, true
}

// stampCluster sets the cluster label of sorted labels: in place where the
// writer gave one, else inserted at its place (within the slice's capacity,
// which decodeSeries leaves for it).
func stampCluster(ls []labelpb.ZLabel, cluster string) []labelpb.ZLabel {
	i, found := slices.BinarySearchFunc(ls, metricstore.ClusterLabel, func(l labelpb.ZLabel, name string) int { return strings.Compare(l.Name, name) })
	if found {
		ls[i].Value = cluster
		return ls
	}
	return slices.Insert(ls, i, labelpb.ZLabel{Name: metricstore.ClusterLabel, Value: cluster})
}

// decodeSeries unmarshals a WriteRequest's time series with Thanos's
// zero-copy TimeSeries.Unmarshal, handing the series slices of two arrays
// sized for the whole request (labels, samples) to append into, instead of
// each series growing two slices of its own (five allocations for ten
// labels), with room for one more label per series (the cluster's, which
// prepareSeries adds). A request holding anything but time series (metadata, which
// updateMetadataRW1 reads apart, fields of newer versions) or that the count cannot
// walk is decoded by Thanos's WriteRequest.Unmarshal instead.
func decodeSeries(buf []byte) ([]prompb.TimeSeries, error) {
	return (&rw1Request{buf: buf}).decode(nil, nil)
}

// decode is decodeSeries of q.buf into q's arrays that, given r, also
// sizes r for the series and sets each series' key (labelsKey) and shape;
// and, given known (refCache.known), looks each series up by its key: a
// series it resolves is a hit in r, with its reference and stored labels,
// and its labels are not decoded (the series' Labels stay empty).
func (q *rw1Request) decode(r *resolvedSlice, known func(i int) bool) ([]prompb.TimeSeries, error) {
	buf := q.buf
	n, nLabels, nSamples, ok := countSeries(buf)
	if !ok {
		var req prompb.WriteRequest
		err := req.Unmarshal(buf)
		if r != nil {
			r.size(len(req.Timeseries)) // zero keys: none is looked up
		}
		return req.Timeseries, err
	}
	hits := 0
	if r != nil {
		r.size(n)
		for i, off := 0, 0; off < len(buf); i++ {
			msg, next := field(buf, off)
			off = next
			var count int
			r.keys[i], r.ends[i], count = labelsKey(msg)
			if known != nil && r.keys[i] != (seriesKey{}) {
				if known(i) {
					nLabels -= count
					hits++
				}
			}
		}
	}
	q.series = resized(q.series, n)
	q.labels, q.samples = grown(q.labels, nLabels+n-hits), grown(q.samples, nSamples)
	series := q.series
	lbls, smpls := arena[labelpb.ZLabel]{buf: q.labels}, arena[prompb.Sample]{buf: q.samples}
	for i, off := 0, 0; off < len(buf); i++ {
		msg, next := field(buf, off)
		off = next
		ts := &series[i]
		if r != nil && r.hit[i] {
			// Known: its samples only.
			ts.Samples = smpls.next()
			if err := ts.Unmarshal(msg[r.ends[i]:]); err != nil {
				return nil, err
			}
			ts.Samples = smpls.used(ts.Samples)
			continue
		}
		ts.Labels, ts.Samples = lbls.next(), smpls.next()
		if err := ts.Unmarshal(msg); err != nil {
			return nil, err
		}
		ts.Labels, ts.Samples = lbls.usedWithRoom(ts.Labels, 1), smpls.used(ts.Samples)
		if r != nil {
			r.shapes[i] = shapeOf(ts.Labels)
		}
	}
	return series, nil
}

// labelsKey is the key of a TimeSeries message (which countSeries has
// walked), the offset past its labels and their number: the key of the
// bytes of its labels, when they are its first fields and no label follows
// another field; else the zero key.
func labelsKey(msg []byte) (key seriesKey, end, count int) {
	for end < len(msg) && msg[end] == tagLabels {
		_, end = field(msg, end)
		count++
	}
	if end == 0 {
		return seriesKey{}, 0, 0
	}
	for off := end; off < len(msg); {
		if msg[off] == tagLabels {
			return seriesKey{}, 0, 0
		}
		_, off = field(msg, off)
	}
	return keyOf(msg[:end]), end, count
}

// Protobuf tags (field number << 3 | wire type 2, length-delimited) of
// WriteRequest.timeseries, TimeSeries.labels and TimeSeries.samples.
const (
	tagTimeseries = 1<<3 | 2
	tagLabels     = 1<<3 | 2
	tagSamples    = 2<<3 | 2
)

// countSeries walks a WriteRequest's fields and those of its time series
// (tags and lengths only) and counts series, labels and samples; ok is
// false if it holds another field or does not parse.
func countSeries(buf []byte) (series, labels, samples int, ok bool) {
	for off := 0; off < len(buf); series++ {
		tag, n := proto.DecodeVarint(buf[off:])
		if n == 0 || tag != tagTimeseries {
			return 0, 0, 0, false
		}
		msg, next, valid := lengthDelimited(buf, off+n)
		if !valid {
			return 0, 0, 0, false
		}
		for m := 0; m < len(msg); {
			ftag, fn := proto.DecodeVarint(msg[m:])
			if fn == 0 || ftag&7 != 2 {
				return 0, 0, 0, false
			}
			switch ftag {
			case tagLabels:
				labels++
			case tagSamples:
				samples++
			}
			if _, m, valid = lengthDelimited(msg, m+fn); !valid {
				return 0, 0, 0, false
			}
		}
		off = next
	}
	return series, labels, samples, true
}

// lengthDelimited reads the length at buf[off:] and returns the bytes it
// announces and the offset past them.
func lengthDelimited(buf []byte, off int) (msg []byte, next int, ok bool) {
	l, n := proto.DecodeVarint(buf[off:])
	if n == 0 || l > uint64(len(buf)-off-n) {
		return nil, 0, false
	}
	start := off + n
	return buf[start : start+int(l)], start + int(l), true
}

// field returns the length-delimited field at buf[off:], which
// countSeries has checked, and the offset past it.
func field(buf []byte, off int) (msg []byte, next int) {
	_, n := proto.DecodeVarint(buf[off:])
	msg, next, _ = lengthDelimited(buf, off+n)
	return msg, next
}

// arena hands out consecutive slices of one array: each empty, with the
// rest of the array as capacity, for an unmarshal to append into.
type arena[T any] struct {
	buf []T
	off int
}

func (a *arena[T]) next() []T { return a.buf[a.off:a.off:len(a.buf)] }

// used takes the slice next handed out once appended to: one that stayed
// in the array keeps its part of it, capped; one that outgrew it (which
// exact counts rule out) moved out and leaves the array as it was.
func (a *arena[T]) used(s []T) []T {
	if len(s) <= len(a.buf)-a.off {
		a.off += len(s)
		return s[:len(s):len(s)]
	}
	return s
}

// usedWithRoom is used, keeping room more elements of the array as the
// slice's capacity, for it to grow into without moving.
func (a *arena[T]) usedWithRoom(s []T, room int) []T {
	if len(s)+room <= len(a.buf)-a.off {
		a.off += len(s) + room
		return s[: len(s) : len(s)+room]
	}
	return a.used(s)
}

func sortedByName(ls []labelpb.ZLabel) bool {
	for i := 1; i < len(ls); i++ {
		if ls[i].Name < ls[i-1].Name {
			return false
		}
	}
	return true
}

// noRefs stands for an appender that cannot look series up: every series
// is then appended by (copied) labels.
type noRefs struct{}

// refsOf is app's series lookup, or noRefs.
func refsOf(app storage.Appender) storage.GetRef {
	if gr, ok := app.(storage.GetRef); ok {
		return gr
	}
	return noRefs{}
}

// lookup returns the series of zero-copy labels zl, sorted and stamped, as
// it is to be appended to. Zero-copy labels must not reach the TSDB, which
// keeps the labels of the series it creates: an existing series comes with
// its reference and the labels the TSDB holds, a new one with reference 0
// and a copy of its labels.
func lookup(getRef storage.GetRef, zl []labelpb.ZLabel) (storage.SeriesRef, labels.Labels) {
	lset := labelpb.ZLabelsToPromLabels(zl)
	if ref, stored := getRef.GetRef(lset, lset.Hash()); ref != 0 {
		return ref, stored
	}
	return 0, detach(zl)
}

func (noRefs) GetRef(labels.Labels, uint64) (storage.SeriesRef, labels.Labels) {
	return 0, labels.EmptyLabels()
}

// appendSeries appends every sample and commits, returning the refusals
// of the samples the TSDB refused (isBadSample), joined; or stops at the
// first other failure, rolls back and returns it.
func (h *handler) appendSeries(app storage.Appender, series []prompb.TimeSeries, refs []resolved) (err error) {
	var bad []error
	defer func() {
		if err != nil {
			_ = app.Rollback()
			return
		}
		if err = app.Commit(); err == nil {
			err = errors.Join(bad...)
		}
	}()
	getRef := refsOf(app)
	maxTime := timestamp.FromTime(time.Now().Add(maxAheadTime))
	for i := range series {
		ts := &series[i]
		if len(ts.Samples) == 0 {
			continue
		}
		ref, lset := refs[i].ref, refs[i].lset
		if ref == 0 {
			// Looked up again: an earlier series of the request may have
			// created it.
			ref, lset = lookup(getRef, ts.Labels)
		}
		for _, s := range ts.Samples {
			if s.Timestamp > maxTime {
				err = errTooFarAhead
			} else {
				ref, err = app.Append(ref, lset, s.Timestamp, s.Value)
			}
			if err != nil && s.Timestamp <= maxTime && isBadSample(err) {
				h.logger.Debug("Out of order sample from remote write", "err", err.Error(), "series", lset.String(), "timestamp", s.Timestamp)
				bad = append(bad, badSample(err, lset))
				err = nil
				continue
			}
			if err != nil {
				return err
			}
		}
		refs[i] = resolved{ref, lset}
	}
	return nil
}

// answerError answers a refused request as Prometheus's handler does.
func (h *handler) answerError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	if errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample) {
		code = http.StatusBadRequest
	} else {
		h.logger.Error("Error while storing the remote write request", "err", err)
	}
	http.Error(w, err.Error(), code)
}

// detach copies a new series' labels out of the request into one exactly
// sized array of labels and one buffer holding all of their strings, so
// the TSDB holds neither the request nor slack.
func detach(zl []labelpb.ZLabel) labels.Labels {
	n := 0
	for _, l := range zl {
		n += len(l.Name) + len(l.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, l := range zl {
		b.WriteString(l.Name)
		b.WriteString(l.Value)
	}
	all := b.String()
	out := make([]labelpb.ZLabel, len(zl))
	off := 0
	for i, l := range zl {
		out[i].Name = all[off : off+len(l.Name)]
		off += len(l.Name)
		out[i].Value = all[off : off+len(l.Value)]
		off += len(l.Value)
	}
	return labelpb.ZLabelsToPromLabels(out)
}
