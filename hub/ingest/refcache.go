package ingest

import (
	"hash/maphash"
	"sync"

	"github.com/fleetpulse/fleetpulse/hub/metricstore"
)

// A cluster writes the same series request after request, each as the
// same bytes. rw1.go keeps, per cluster, the series reference and stored
// labels of every series it appended, keyed by the bytes of the series'
// labels as written: a series written again costs a hash of those bytes
// and no sorting, stamping, validation, label hashing or head lookup.
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
	series map[seriesKey]resolved
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
		v, _ = rc.clusters.LoadOrStore(cluster, &refCache{epoch: epoch, series: map[seriesKey]resolved{}})
	}
	c := v.(*refCache)
	c.mu.RLock()
	current := c.epoch == epoch
	c.mu.RUnlock()
	if !current {
		c.mu.Lock()
		if c.epoch != epoch {
			c.epoch, c.series = epoch, map[seriesKey]resolved{}
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

// resolve sets refs[i] to the kept series of keys[i], where there is one,
// and hit[i].
func (c *refCache) resolve(keys []seriesKey, refs []resolved, hit []bool) {
	if c == nil {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, k := range keys {
		if k != (seriesKey{}) {
			if r, ok := c.series[k]; ok {
				refs[i], hit[i] = r, true
			}
		}
	}
}

// add keeps the series of a committed request that it did not hit and
// that were appended (refs[i] has the reference), unless the head's epoch moved on since epoch, when it was
// read.
func (c *refCache) add(epoch metricstore.HeadEpoch, keys []seriesKey, refs []resolved, known []bool) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch {
		return
	}
	for i, k := range keys {
		if k == (seriesKey{}) || known[i] || refs[i].ref == 0 {
			continue
		}
		if len(c.series) >= maxCachedSeries {
			c.series = map[seriesKey]resolved{}
		}
		c.series[k] = refs[i]
	}
}
