package ingest

import (
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/thanos-io/thanos/pkg/store/labelpb"

	"github.com/fleetpulse/fleetpulse/hub/limits"
	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// A cluster writes the same series request after request, each as the
// same bytes. rw1.go and rw2.go keep, per cluster, the series reference
// and stored labels of every series they appended, keyed by the series'
// labels as written (remote write 1.0: their bytes; 2.0: their symbols, in
// order): a series written again costs a hash of those and no sorting,
// stamping, validation, label hashing or head lookup.
//
// Bytes map to one series: the series rw1.go prepares from them is a
// function of the bytes and the cluster (sorted, stamped), and only series
// that passed every check are kept. A reference stays that of its series
// while the head's epoch (metricstore.HeadEpoch) is unchanged, and is given
// with the series' stored labels, which the head appends by if it has
// dropped the series meanwhile. The key is two 64-bit hashes seeded at
// random per process, so an accidental collision is as likely as 2^-128
// per pair of series, and a writer cannot compute one ahead; a collision
// would misdirect the samples of one of the cluster's own series into
// another of its own, never into another cluster's.

// A cluster's writers also send its series in the same order request after
// request (a remote-write shard batches its series as it last did): each
// series kept remembers the one written after it last time, and a
// request's series after its first are found there, in entries kept in
// the order they were first written, without probing the map (which,
// at 100,000 series, is a cache miss each time).

// seriesKey identifies a series by its labels' bytes as written; the zero
// key stands for a series that is not looked up.
type seriesKey [2]uint64

var keySeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func keyOf(b []byte) seriesKey {
	return seriesKey{maphash.Bytes(keySeeds[0], b), maphash.Bytes(keySeeds[1], b)}
}

// symbolKey is the key of one remote write 2.0 symbol (rw2.go
// resolveKnown).
func symbolKey(s string) seriesKey {
	return seriesKey{maphash.String(keySeeds[0], s), maphash.String(keySeeds[1], s)}
}

// maxCachedSeries bounds one cluster's cache: past it the cache starts
// over, so that a writer sending ever new series (or the same series
// spelled in ever new bytes) cannot grow it past what a head holds.
const maxCachedSeries = 1 << 21

// refCaches holds each cluster's cache.
type refCaches struct {
	store    *metricstore.Store
	clusters sync.Map // cluster name → *refCache
}

// refCache is one cluster's series, from the head of one epoch: entries
// in the order they were first written, and their index by key.
type refCache struct {
	mu      sync.RWMutex
	epoch   metricstore.HeadEpoch
	index   map[seriesKey]int32
	entries entryBlocks
}

// cacheEntry is one series kept: its key, its reference, stored labels
// and shape, and next, one past the entry of the series written after it
// last time (0: none), which lookups under the read lock update
// atomically.
type cacheEntry struct {
	key seriesKey
	cachedSeries
	next int32
}

// entryBlocks holds entries in blocks of up to a fixed size, so that a
// cache of hundreds of thousands of entries grows without copying them: the
// first block grows as entries come (a cluster may write a handful of
// series), the next are allocated whole.
type entryBlocks struct {
	blocks [][]cacheEntry
	n      int32
}

const entryBlockBits = 10

// at is entry i, which exists.
func (b *entryBlocks) at(i int32) *cacheEntry {
	return &b.blocks[i>>entryBlockBits][i&(1<<entryBlockBits-1)]
}

// add appends an entry of key k and returns where.
func (b *entryBlocks) add(k seriesKey) int32 {
	i := b.n
	if int(i>>entryBlockBits) == len(b.blocks) {
		size := 1 << entryBlockBits
		if len(b.blocks) == 0 {
			size = 8
		}
		b.blocks = append(b.blocks, make([]cacheEntry, 0, size))
	}
	last := &b.blocks[len(b.blocks)-1]
	*last = append(*last, cacheEntry{key: k})
	b.n++
	return i
}

func newRefCache(epoch metricstore.HeadEpoch) *refCache {
	return &refCache{epoch: epoch, index: map[seriesKey]int32{}}
}

// reset empties the cache, for the head of epoch.
func (c *refCache) reset(epoch metricstore.HeadEpoch) {
	c.epoch, c.index, c.entries = epoch, map[seriesKey]int32{}, entryBlocks{}
}

// forCluster returns the cluster's cache as of its head's current epoch
// (emptied if the epoch moved on) and that epoch, or nil without a store
// or an open shard.
func (rc *refCaches) forCluster(cluster string) (*refCache, metricstore.HeadEpoch) {
	if rc == nil || rc.store == nil {
		return nil, metricstore.HeadEpoch{}
	}
	epoch, ok := rc.store.HeadEpoch(cluster)
	if !ok {
		return nil, epoch
	}
	v, ok := rc.clusters.Load(cluster)
	if !ok {
		v, _ = rc.clusters.LoadOrStore(cluster, newRefCache(epoch))
	}
	c := v.(*refCache)
	c.mu.RLock()
	current := c.epoch == epoch
	c.mu.RUnlock()
	if !current {
		c.mu.Lock()
		if c.epoch != epoch {
			c.reset(epoch)
		}
		c.mu.Unlock()
		// The epoch moves on when the head drops series: drop the caches
		// of clusters whose epoch moved too (those that stopped writing
		// among them), rather than keep them for good.
		rc.sweep(cluster)
	}
	return c, epoch
}

// sweep drops the caches, but cluster's, whose head's epoch moved on.
func (rc *refCaches) sweep(cluster string) {
	rc.clusters.Range(func(k, v any) bool {
		name := k.(string)
		if name == cluster {
			return true
		}
		c := v.(*refCache)
		epoch, ok := rc.store.HeadEpoch(name)
		c.mu.RLock()
		stale := !ok || c.epoch != epoch
		c.mu.RUnlock()
		if stale {
			rc.clusters.CompareAndDelete(name, c)
		}
		return true
	})
}

// shape is what the per-request limits read of a series' labels as
// written (checkRW1): how many, the longest name and the longest value.
type shape struct{ labels, name, value uint32 }

func shapeOf(zl []labelpb.ZLabel) shape {
	sh := shape{labels: sizeOf(zl)}
	for _, l := range zl {
		sh.name, sh.value = max(sh.name, sizeOf(l.Name)), max(sh.value, sizeOf(l.Value))
	}
	return sh
}

// sizeOf is a length as a shape keeps it; a request decompresses to far
// less than 4 GiB.
func sizeOf[T string | []labelpb.ZLabel | []uint32](s T) uint32 { return uint32(len(s)) }

// within reports whether labels of this shape pass the limits b.
func (sh shape) within(b *limits.Bounds) bool {
	return int(sh.labels) <= b.LabelsPerSeries && int(sh.name) <= b.LabelNameLength && int(sh.value) <= b.LabelValueLength
}

// cachedSeries is a series as kept: its reference and stored labels, and
// the shape of its labels as written.
type cachedSeries struct {
	resolved
	shape shape
}

// known returns the lookup of the request r's series (whose keys are set)
// that the cache keeps and whose labels pass the limits b (a series past
// them is decoded, for the limits to refuse it as they refuse any), to be
// called for its series in order, until done is called. A series found is
// a hit in r, with its reference and stored labels.
func (c *refCache) known(b *limits.Bounds, r *resolvedSlice) (known func(i int) bool, done func()) {
	if c == nil {
		return nil, func() {}
	}
	c.mu.RLock()
	prev := int32(-1) // the entry of the series before, if found
	return func(i int) bool {
		k := r.keys[i]
		at := int32(-1)
		if prev >= 0 {
			if next := atomic.LoadInt32(&c.entries.at(prev).next); next > 0 && next <= c.entries.n && c.entries.at(next-1).key == k {
				at = next - 1
			}
		}
		if at < 0 {
			var ok bool
			if at, ok = c.index[k]; !ok {
				prev = -1
				return false
			}
			if prev >= 0 {
				atomic.StoreInt32(&c.entries.at(prev).next, at+1)
			}
		}
		prev, r.at[i] = at, at
		e := c.entries.at(at)
		if !e.shape.within(b) {
			return false
		}
		r.s[i], r.hit[i] = e.resolved, true
		return true
	}, c.mu.RUnlock
}

// add keeps the series of a committed request (r) that it did not hit and
// that were appended (r.s has their reference), unless the head's epoch
// moved on since epoch, when it was read; and links each series kept to the
// one after it.
func (c *refCache) add(epoch metricstore.HeadEpoch, r *resolvedSlice) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	prev := int32(-1)
	for i, k := range r.keys {
		at := r.at[i]
		switch {
		case r.hit[i]:
		case k == (seriesKey{}) || r.s[i].ref == 0:
			prev = -1
			continue
		default:
			if c.entries.n >= maxCachedSeries {
				c.reset(epoch)
				prev = -1
			}
			var ok bool
			if at, ok = c.index[k]; !ok {
				at = c.entries.add(k)
				c.index[k] = at
			}
			c.entries.at(at).cachedSeries = cachedSeries{r.s[i], r.shapes[i]}
		}
		if prev >= 0 && prev < c.entries.n {
			c.entries.at(prev).next = at + 1
		}
		prev = at
	}
}
