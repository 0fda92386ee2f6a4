package ingest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb/prompb"

	"github.com/fleetpulse/fleetpulse/hub/metadata"
)

// The response headers of remote write 2.0 (client_golang's exp/api/remote
// keeps their names unexported).
const (
	samplesWrittenHeader    = "X-Prometheus-Remote-Write-Samples-Written"
	histogramsWrittenHeader = "X-Prometheus-Remote-Write-Histograms-Written"
	exemplarsWrittenHeader  = "X-Prometheus-Remote-Write-Exemplars-Written"
)

// writeRW2 stores the snappy-compressed remote-write 2.0 body through app
// and answers, or returns false without touching app or w when the request
// is for Prometheus's handler.
//
// It is the hub's own path for what the agent sends: float samples, with or
// without metadata (which the store keeps per cluster, not as labels). It
// decodes the request without a string per symbol (symbols point into the
// decompressed bytes) into pooled storage, builds each series' labels from
// its label references, stamps the cluster label in place, and appends as
// writeRW1 does: an existing series by reference with the labels the TSDB
// holds, a new one with a copy of its labels (detach).
//
// Its answers are those of Prometheus's handler (storage/remote v0.309.1,
// writeV2, with start timestamps and type-and-unit labels off and metadata
// appending on, as the hub builds it): a sample the TSDB refuses as out
// of order, duplicate, too old or out of bounds (more than maxAheadTime
// ahead included) is left out and the rest committed, answered 400 with
// every refusal, one a line, naming the series as the writer sent it; any
// other failure rolls back with 500. Every answer carries the written
// counts (zero after a 500). What it would not answer the same way goes to
// Prometheus's handler, decided before anything is appended: a body it
// cannot decompress or decode (or holding a field it does not read),
// histograms, exemplars, series without samples, label or metadata
// references outside the symbols (for metadata, Prometheus's handler
// panics), and series it skips for their labels. Before anything is
// appended, a request over the cluster's limits is refused whole
// (limits.go).
func (h *handler) writeRW2(w http.ResponseWriter, app storage.Appender, cluster string, compressed []byte) bool {
	if n, err := snappy.DecodedLen(compressed); err != nil || n > maxDecodedSize {
		return false
	}
	req := rw2Pool.Get().(*rw2Request)
	defer req.release()
	var err error
	if req.buf, err = decompress(req.buf, compressed); err != nil {
		return false
	}
	if !req.decode(req.buf) {
		return false
	}
	if h.overLimitsRW2(w, app, cluster, req) {
		return true
	}
	if !req.valid() {
		return false
	}
	refs := getResolved()
	defer putResolved(refs)
	cache, epoch := h.refs.forCluster(cluster)
	known, done := cache.known(h.limits.For(context.Background(), cluster).Bounds(), refs)
	req.resolveKnown(refs, known)
	done()
	if !req.prepare(cluster, refsOf(app), refs) {
		return false
	}
	if h.overHeadSeriesRW2(w, app, cluster, req) {
		return true
	}
	written, bad, err := h.appendRW2(app, req, refs)
	if err == nil {
		// A bad sample does not fail the request: the rest is committed.
		err = app.Commit()
	} else {
		// A 500 is retried and the TSDB is not idempotent: as Prometheus
		// does, keep nothing.
		_ = app.Rollback()
	}
	if err != nil {
		h.logger.Error("Error while storing the remote write request", "err", err)
		setWritten(w, 0)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return true
	}
	cache.add(epoch, refs)
	setWritten(w, written)
	if len(bad) > 0 {
		http.Error(w, errors.Join(bad...).Error(), http.StatusBadRequest)
		return true
	}
	w.WriteHeader(http.StatusNoContent)
	return true
}

// setWritten sets the written counts every remote write 2.0 answer of
// Prometheus's handler carries (this path writes no histograms or
// exemplars).
func setWritten(w http.ResponseWriter, samples int) {
	h := w.Header()
	h.Set(samplesWrittenHeader, strconv.Itoa(samples))
	h.Set(histogramsWrittenHeader, "0")
	h.Set(exemplarsWrittenHeader, "0")
}

// appendRW2 appends every sample, in the order and with the references
// Prometheus's handler would, and returns how many were appended, the
// refusals of bad samples, and the first other error, which ends it. Each
// series' reference and labels as appended go to refs, for the cluster's
// cache.
func (h *handler) appendRW2(app storage.Appender, req *rw2Request, refs *resolvedSlice) (written int, bad []error, err error) {
	getRef := refsOf(app)
	maxTime := timestamp.FromTime(time.Now().Add(maxAheadTime))
	for i := range req.series {
		s := &req.series[i]
		ref, lset := s.resolved.ref, s.resolved.lset
		if ref == 0 {
			// Looked up again: an earlier series of the request may have
			// created it.
			ref, lset = lookup(getRef, s.labels)
		}
		for _, smpl := range s.samples {
			if smpl.Timestamp > maxTime {
				ref, err = 0, errTooFarAhead
			} else {
				ref, err = app.Append(ref, lset, smpl.Timestamp, smpl.Value)
			}
			if err == nil {
				written++
				continue
			}
			if !errors.Is(err, storage.ErrOutOfOrderSample) && !errors.Is(err, storage.ErrOutOfBounds) &&
				!errors.Is(err, storage.ErrDuplicateSampleForTimestamp) && !errors.Is(err, storage.ErrTooOldSample) {
				return 0, nil, err
			}
			// Prometheus names the series by the labels it was sent.
			series := req.writerLabels(s).String()
			h.logger.Debug("Out of order sample from remote write", "err", err.Error(), "series", series, "timestamp", smpl.Timestamp)
			bad = append(bad, fmt.Errorf("%w for series %v", err, series))
		}
		if s.typ != 0 || s.help != 0 || s.unit != 0 {
			// After the series' samples, as Prometheus's handler gives it.
			_, _ = app.UpdateMetadata(ref, lset, metadata.FromProto(int32(s.typ), req.symbols[s.help], req.symbols[s.unit]))
		}
		refs.s[i] = resolved{ref, lset}
	}
	return written, bad, nil
}

// rw2Request is a decoded remote-write 2.0 request. Series keep their
// label references, samples and labels in three arrays shared by the
// request, which is pooled: a request of the same shape as the last
// allocates none of them.
type rw2Request struct {
	buf     []byte   // the decompressed body (buffers.go)
	symbols []string // pointing into buf
	series  []rw2Series
	refs    []uint32
	samples []prompb.Sample
	labels  []labelpb.ZLabel
	// symbolKeys are the symbols' keys, computed as series need them
	// (resolveKnown); keyBuf is where a series' key is put together.
	symbolKeys []seriesKey
	keyBuf     []byte
}

type rw2Series struct {
	refs    []uint32
	samples []prompb.Sample
	// typ, help and unit are the series' metadata: its type and the
	// symbol references of its help and unit.
	typ, help, unit uint32
	// labels are set by prepare: sorted and stamped, or none for a series
	// the cluster's cache resolved; and resolved, if the head holds the
	// series.
	labels   []labelpb.ZLabel
	resolved resolved
	// refsEnd and samplesEnd are where the series' references and samples
	// end in the request's arrays, which decoding may still move.
	refsEnd, samplesEnd int
}

var rw2Pool = sync.Pool{New: func() any { return new(rw2Request) }}

// maxPooledLabels keeps the arrays of outsized requests out of the pool.
const maxPooledLabels = 1 << 17

// release drops what points into the request's body (symbols and labels)
// and returns the request to the pool.
func (r *rw2Request) release() {
	if cap(r.labels) > maxPooledLabels || cap(r.refs) > 2*maxPooledLabels || cap(r.symbols) > maxPooledLabels ||
		cap(r.samples) > maxPooledLabels || cap(r.series) > maxPooledLabels/4 || cap(r.symbolKeys) > maxPooledLabels ||
		cap(r.keyBuf) > maxPooledLabels || cap(r.buf) > maxPooledDecoded {
		return
	}
	clear(r.symbols)
	clear(r.series)
	clear(r.labels)
	r.symbols, r.series, r.refs, r.samples, r.labels = r.symbols[:0], r.series[:0], r.refs[:0], r.samples[:0], r.labels[:0]
	rw2Pool.Put(r)
}

// Protobuf tags (field number << 3 | wire type) of the remote write 2.0
// fields rw2.go reads; any other field (histograms, exemplars, unknown
// ones) sends the request to Prometheus's handler.
const (
	tagV2Symbols        = 4<<3 | 2 // Request.symbols
	tagV2Timeseries     = 5<<3 | 2 // Request.timeseries
	tagV2Ref            = 1 << 3   // TimeSeries.labels_refs, unpacked (wire type 0, varint)
	tagV2Refs           = 1<<3 | 2 // TimeSeries.labels_refs, packed
	tagV2Sample         = 2<<3 | 2 // TimeSeries.samples
	tagV2Metadata       = 5<<3 | 2 // TimeSeries.metadata
	tagV2Value          = 1<<3 | 1 // Sample.value
	tagV2Timestamp      = 2 << 3   // Sample.timestamp (wire type 0, varint)
	tagV2StartTimestamp = 3 << 3   // Sample.start_timestamp (wire type 0, varint)
	tagV2Type           = 1 << 3   // Metadata.type (wire type 0, varint)
	tagV2HelpRef        = 3 << 3   // Metadata.help_ref (wire type 0, varint)
	tagV2UnitRef        = 4 << 3   // Metadata.unit_ref (wire type 0, varint)
)

// decode reads a writev2.Request into r, as its generated Unmarshal
// would, or returns false (for Prometheus's handler) on any field it does
// not read or bytes it does not parse.
func (r *rw2Request) decode(buf []byte) bool {
	for off := 0; off < len(buf); {
		tag, next, ok := uvarint(buf, off)
		if !ok || (tag != tagV2Symbols && tag != tagV2Timeseries) {
			return false
		}
		msg, next, ok := lengthDelimitedV2(buf, next)
		if !ok {
			return false
		}
		if tag == tagV2Symbols {
			r.symbols = append(r.symbols, unsafe.String(unsafe.SliceData(msg), len(msg)))
		} else if !r.decodeSeries(msg) {
			return false
		}
		off = next
	}
	// The arrays are complete: hand each series its part.
	refs, samples := 0, 0
	for i := range r.series {
		s := &r.series[i]
		s.refs, s.samples = r.refs[refs:s.refsEnd:s.refsEnd], r.samples[samples:s.samplesEnd:s.samplesEnd]
		refs, samples = s.refsEnd, s.samplesEnd
	}
	return true
}

func (r *rw2Request) decodeSeries(buf []byte) bool {
	var s rw2Series
	prevSamples := len(r.samples)
	for off := 0; off < len(buf); {
		tag, next, ok := uvarint(buf, off)
		if !ok {
			return false
		}
		var v uint64
		var msg []byte
		switch tag {
		case tagV2Ref:
			v, next, ok = uvarint(buf, next)
			r.refs = append(r.refs, uint32(v)) // as gogo's code: the low 32 bits
		case tagV2Refs:
			msg, next, ok = lengthDelimitedV2(buf, next)
			// Grown once, by the count of varints (bytes that end one), as
			// gogo's decoder does: appending one at a time would allocate
			// several times the final array.
			r.refs = slices.Grow(r.refs, varints(msg))
			for p := 0; ok && p < len(msg); {
				v, p, ok = uvarint(msg, p)
				r.refs = append(r.refs, uint32(v))
			}
		case tagV2Sample:
			msg, next, ok = lengthDelimitedV2(buf, next)
			var smpl prompb.Sample
			if ok {
				smpl, ok = decodeSampleV2(msg)
				r.samples = append(r.samples, smpl)
			}
		case tagV2Metadata:
			// Merged field by field, as a repeated message field is.
			msg, next, ok = lengthDelimitedV2(buf, next)
			ok = ok && s.decodeMetadata(msg)
		default:
			return false
		}
		if !ok {
			return false
		}
		off = next
	}
	s.refsEnd, s.samplesEnd = len(r.refs), len(r.samples)
	if s.samplesEnd == prevSamples {
		return false // no samples: Prometheus's handler's to answer, and a flood of them ends here
	}
	r.series = append(r.series, s)
	return true
}

func decodeSampleV2(buf []byte) (s prompb.Sample, ok bool) {
	for off := 0; off < len(buf); {
		tag, next, ok := uvarint(buf, off)
		if !ok {
			return s, false
		}
		var v uint64
		switch tag {
		case tagV2Value:
			if len(buf)-next < 8 {
				return s, false
			}
			s.Value = math.Float64frombits(binary.LittleEndian.Uint64(buf[next:]))
			next += 8
		case tagV2Timestamp:
			v, next, ok = uvarint(buf, next)
			s.Timestamp = int64(v)
		case tagV2StartTimestamp:
			// Read, not kept: the hub does not ingest start timestamps.
			_, next, ok = uvarint(buf, next)
		default:
			return s, false
		}
		if !ok {
			return s, false
		}
		off = next
	}
	return s, true
}

func (s *rw2Series) decodeMetadata(buf []byte) bool {
	for off := 0; off < len(buf); {
		tag, next, ok := uvarint(buf, off)
		if !ok {
			return false
		}
		var v uint64
		switch tag {
		case tagV2Type:
			v, next, ok = uvarint(buf, next)
			s.typ = uint32(v)
		case tagV2HelpRef:
			v, next, ok = uvarint(buf, next)
			s.help = uint32(v)
		case tagV2UnitRef:
			v, next, ok = uvarint(buf, next)
			s.unit = uint32(v)
		default:
			return false
		}
		if !ok {
			return false
		}
		off = next
	}
	return true
}

// uvarint reads the varint at buf[off:] as gogo's generated code does: at
// most ten bytes, bits past the 64th dropped. ok is false if it does not
// end within buf.
func uvarint(buf []byte, off int) (v uint64, next int, ok bool) {
	for shift := uint(0); shift < 64; shift += 7 {
		if off >= len(buf) {
			return 0, 0, false
		}
		b := buf[off]
		off++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, off, true
		}
	}
	return 0, 0, false
}

// varints counts the varints in buf: the bytes that end one.
func varints(buf []byte) int {
	n := 0
	for _, b := range buf {
		if b < 0x80 {
			n++
		}
	}
	return n
}

// lengthDelimitedV2 reads the length at buf[off:] and returns the bytes it
// announces and the offset past them.
func lengthDelimitedV2(buf []byte, off int) (msg []byte, next int, ok bool) {
	l, off, ok := uvarint(buf, off)
	if !ok || l > uint64(len(buf)-off) {
		return nil, 0, false
	}
	return buf[off : off+int(l)], off + int(l), true
}

// valid reports whether every series has samples and label pairs and
// every reference is within the symbols; a request that is not is for
// Prometheus's handler.
func (r *rw2Request) valid() bool {
	nsym := uint32(len(r.symbols))
	for i := range r.series {
		s := &r.series[i]
		if len(s.samples) == 0 || len(s.refs)%2 != 0 || s.help >= nsym || s.unit >= nsym {
			return false
		}
		for _, ref := range s.refs {
			if ref >= nsym {
				return false
			}
		}
	}
	return true
}

// rw2KeyDomain starts every remote write 2.0 series key's input, where a
// remote write 1.0 key's starts with the tag of a label (rw1.go
// labelsKey): the two never hash the same bytes.
const rw2KeyDomain = 0

// resolveKnown sizes refs for the request's valid series and sets each
// series' key and the shape of its labels; given known (refCache.known),
// it resolves the series the cache holds (refs.hit). The key of a series is that of its
// labels' symbols' keys in the order written: the same labels written the
// same way make the same key whatever the request's symbol table, and two
// different label lists make different keys but by a collision of 128-bit
// keys seeded at random per process (refcache.go).
func (r *rw2Request) resolveKnown(refs *resolvedSlice, known func(i int) bool) {
	refs.size(len(r.series))
	r.symbolKeys = resized(r.symbolKeys, len(r.symbols))
	for i := range r.series {
		s := &r.series[i]
		sh := shape{labels: sizeOf(s.refs) / 2}
		buf := append(r.keyBuf[:0], rw2KeyDomain)
		for j, ref := range s.refs {
			sym := r.symbols[ref]
			k := r.symbolKeys[ref]
			if k == (seriesKey{}) {
				k = symbolKey(sym)
				r.symbolKeys[ref] = k
			}
			buf = binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(buf, k[0]), k[1])
			if j%2 == 0 {
				sh.name = max(sh.name, sizeOf(sym))
			} else {
				sh.value = max(sh.value, sizeOf(sym))
			}
		}
		r.keyBuf = buf
		refs.keys[i], refs.shapes[i] = keyOf(buf), sh
		if known != nil {
			known(i)
		}
	}
}

// prepare builds the labels of every series the cluster's cache did not
// resolve (refs.hit) into the request's label array: sorted, as
// Prometheus's handler sorts them, and stamped (stampCluster, with room for
// the cluster label left after each series'); it looks each up in the
// head, and checks the labels of those the head does not hold
// (prepareLabels). It returns false when the request is for Prometheus's
// handler. The request is valid and resolveKnown has run.
func (r *rw2Request) prepare(cluster string, getRef storage.GetRef, refs *resolvedSlice) bool {
	// Sized once, so that no series' labels move as the next are added.
	n := len(r.series)
	for i := range r.series {
		if refs.hit[i] {
			n--
		} else {
			n += len(r.series[i].refs) / 2
		}
	}
	r.labels = slices.Grow(r.labels[:0], n)
	for i := range r.series {
		s := &r.series[i]
		if refs.hit[i] {
			s.resolved = refs.s[i]
			continue
		}
		start := len(r.labels)
		for j := 0; j < len(s.refs); j += 2 {
			name, value := s.refs[j], s.refs[j+1]
			r.labels = append(r.labels, labelpb.ZLabel{Name: r.symbols[name], Value: r.symbols[value]})
		}
		end := len(r.labels)
		r.labels = r.labels[:end+1]
		zl := r.labels[start : end : end+1]
		if !sortedByName(zl) {
			slices.SortFunc(zl, func(a, b labelpb.ZLabel) int { return strings.Compare(a.Name, b.Name) })
		}
		var ok bool
		if s.labels, s.resolved, ok = prepareLabels(zl, cluster, getRef); !ok {
			return false
		}
	}
	return true
}

// writerLabels are s's labels as the writer sent them (before the stamp),
// sorted, as Prometheus's handler names the series in its refusals.
func (r *rw2Request) writerLabels(s *rw2Series) labels.Labels {
	b := labels.NewScratchBuilder(len(s.refs) / 2)
	for j := 0; j < len(s.refs); j += 2 {
		b.Add(r.symbols[s.refs[j]], r.symbols[s.refs[j+1]])
	}
	b.Sort()
	return b.Labels()
}
