package ingest

import (
	"bytes"
	"net/http"
	"slices"
	"sync"

	"github.com/golang/snappy"
	"github.com/thanos-io/thanos/pkg/store/labelpb"
	"github.com/thanos-io/thanos/pkg/store/storepb/prompb"
)

// A request's memory is pooled, so that a cluster writing requests of the
// same shape again and again allocates none of it: the compressed body,
// the decompressed bytes and the arrays its series are decoded into.
// Decoded labels point into the decompressed bytes (zero-copy), so those
// go back to the pool only once the request is answered, and only because
// nothing the hub keeps points into them: a new series' labels are copied
// (detach), metadata is copied by the metadata store, refusals and errors
// are formatted, and the series cache holds the head's labels.

// bodyPool holds compressed request bodies.
var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledBody keeps outsized bodies out of the pool.
const maxPooledBody = 4 << 20

// maxPooledDecoded keeps the decompressed bytes of outsized requests out
// of the pool (requests decompress to at most maxDecodedSize).
const maxPooledDecoded = 16 << 20

// readBody reads r's whole body into a pooled buffer; putBody returns it.
func readBody(r *http.Request) (body *bytes.Buffer, err error) {
	body = bodyPool.Get().(*bytes.Buffer)
	body.Reset()
	if r.ContentLength > 0 {
		body.Grow(int(r.ContentLength))
	}
	_, err = body.ReadFrom(r.Body)
	return body, err
}

func putBody(b *bytes.Buffer) {
	if b.Cap() <= maxPooledBody {
		bodyPool.Put(b)
	}
}

// decompress decodes the snappy block compressed into buf's array when
// it is large enough, else into a new one.
func decompress(buf, compressed []byte) ([]byte, error) {
	return snappy.Decode(buf[:cap(buf)], compressed)
}

// rw1Request is a remote write 1.0 request as rw1.go decodes it: its
// decompressed bytes and the arrays of its series, their labels (pointing
// into the bytes) and their samples.
type rw1Request struct {
	buf     []byte
	series  []prompb.TimeSeries
	labels  []labelpb.ZLabel
	samples []prompb.Sample
}

var rw1Pool = sync.Pool{New: func() any { return new(rw1Request) }}

func getRW1() *rw1Request { return rw1Pool.Get().(*rw1Request) }

// release returns the request to the pool, unless it is outsized.
func (q *rw1Request) release() {
	if cap(q.buf) > maxPooledDecoded || cap(q.series) > maxPooledLabels/4 || cap(q.labels) > maxPooledLabels ||
		cap(q.samples) > maxPooledLabels {
		return
	}
	rw1Pool.Put(q)
}

// resolvedSlice is a request's pooled arrays, by series: its key, the
// shape of its labels as written, whether the cluster's cache resolved
// it (and where it found it), and its reference and stored labels.
type resolvedSlice struct {
	keys   []seriesKey
	ends   []int // where each series' labels end in its message
	shapes []shape
	hit    []bool
	at     []int32 // its entry in the cluster's cache (refCache.known), if it had one
	s      []resolved
}

var resolvedPool = sync.Pool{New: func() any { return new(resolvedSlice) }}

// getResolved returns arrays from the pool; putResolved returns them,
// dropping the stored labels they point to.
func getResolved() *resolvedSlice { return resolvedPool.Get().(*resolvedSlice) }

// size makes every array n zero elements long.
func (r *resolvedSlice) size(n int) {
	r.keys = resized(r.keys, n)
	r.ends = resized(r.ends, n)
	r.shapes = resized(r.shapes, n)
	r.hit = resized(r.hit, n)
	r.at = grown(r.at, n)
	for i := range r.at {
		r.at[i] = -1
	}
	r.s = resized(r.s, n)
}

// resized returns s with n zero elements, in its array if it is large
// enough.
func resized[T any](s []T, n int) []T {
	s = grown(s, n)
	clear(s)
	return s
}

// grown returns s with n elements, in its array if it is large enough;
// those it had keep their values.
func grown[T any](s []T, n int) []T { return slices.Grow(s[:0], n)[:n] }

func putResolved(r *resolvedSlice) {
	if cap(r.s) > maxPooledLabels {
		return
	}
	clear(r.s)
	resolvedPool.Put(r)
}
