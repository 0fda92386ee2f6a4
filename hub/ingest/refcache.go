package ingest

import (
	"hash/maphash"
	"sync"

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

// refCache is one cluster's series, from the head of one epoch.
type refCache struct {
	mu     sync.RWMutex
	epoch  metricstore.HeadEpoch
	series map[seriesKey]cachedSeries
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
		v, _ = rc.clusters.LoadOrStore(cluster, &refCache{epoch: epoch, series: map[seriesKey]cachedSeries{}})
	}
	c := v.(*refCache)
	c.mu.RLock()
	current := c.epoch == epoch
	c.mu.RUnlock()
	if !current {
		c.mu.Lock()
		if c.epoch != epoch {
			c.epoch, c.series = epoch, map[seriesKey]cachedSeries{}
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
type shape struct{ labels, name, value int }

func shapeOf(zl []labelpb.ZLabel) shape {
	sh := shape{labels: len(zl)}
	for _, l := range zl {
		sh.name, sh.value = max(sh.name, len(l.Name)), max(sh.value, len(l.Value))
	}
	return sh
}

// within reports whether labels of this shape pass the limits b.
func (sh shape) within(b *limits.Bounds) bool {
	return sh.labels <= b.LabelsPerSeries && sh.name <= b.LabelNameLength && sh.value <= b.LabelValueLength
}

// cachedSeries is a series as kept: its reference and stored labels, and
// the shape of its labels as written.
type cachedSeries struct {
	resolved
	shape shape
}

// known returns the lookup of series the cache keeps whose labels pass the
// limits b (a series past them is decoded, for the limits to refuse it as
// they refuse any), to be used until done is called.
func (c *refCache) known(b *limits.Bounds) (known func(seriesKey) (resolved, bool), done func()) {
	if c == nil {
		return nil, func() {}
	}
	c.mu.RLock()
	return func(k seriesKey) (resolved, bool) {
		if s, ok := c.series[k]; ok && s.shape.within(b) {
			return s.resolved, true
		}
		return resolved{}, false
	}, c.mu.RUnlock
}

// add keeps the series of a committed request (r) that it did not hit and
// that were appended (r.s has their reference), unless the head's epoch
// moved on since epoch, when it was read.
func (c *refCache) add(epoch metricstore.HeadEpoch, r *resolvedSlice) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	for i, k := range r.keys {
		if k == (seriesKey{}) || r.hit[i] || r.s[i].ref == 0 {
			continue
		}
		if len(c.series) >= maxCachedSeries {
			c.series = map[seriesKey]cachedSeries{}
		}
		c.series[k] = cachedSeries{r.s[i], r.shapes[i]}
	}
}
