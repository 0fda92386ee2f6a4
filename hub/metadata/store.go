package metadata

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
)

// Family is a metric family's metadata as a writer sent it.
type Family struct {
	Name string
	metadata.Metadata
}

// Reasons the dropped counter counts.
const (
	reasonFamilies = "max_families_per_cluster"
	reasonLength   = "max_help_bytes"
)

// Store holds the clusters' metadata. Its methods are safe for concurrent
// use.
type Store struct {
	limits Limits

	mu sync.RWMutex
	// clusters are each cluster's families, by name.
	clusters map[string]map[string]*variant
	// families are the distinct metadata the clusters sent, by family
	// name: what the clusters share is held once.
	families map[string]*family

	entries   prometheus.Gauge
	dropped   *prometheus.CounterVec
	truncated prometheus.Counter
}

type family struct {
	name     string
	variants map[metadata.Metadata]*variant
}

// variant is one metadata of a family, and how many clusters sent it.
type variant struct {
	family *family
	md     metadata.Metadata
	refs   int
}

// New builds an empty store.
func New(limits Limits, reg prometheus.Registerer) (*Store, error) {
	if err := limits.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metadata limits: %w", err)
	}
	f := promauto.With(reg)
	return &Store{
		limits:   limits,
		clusters: map[string]map[string]*variant{},
		families: map[string]*family{},
		entries: f.NewGauge(prometheus.GaugeOpts{
			Name: "fleetpulse_hub_metadata_families",
			Help: "Metric families the hub holds metadata for, counted once per cluster that sent it.",
		}),
		dropped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_metadata_dropped_total",
			Help: "Metric families' metadata dropped, by the limit that dropped it.",
		}, []string{"limit"}),
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_metadata_help_truncated_total",
			Help: "Help texts cut at the metadata help length limit.",
		}),
	}, nil
}

// Update records the cluster's families' metadata, each replacing what the
// cluster sent for that family before. Families without metadata (no name,
// or an unknown type without help or unit) are skipped. Fams may point into
// a request's buffer: what is kept is copied. Metadata that did not change,
// the common case, costs a map lookup each under a read lock.
func (s *Store) Update(cluster string, fams []Family) {
	s.mu.RLock()
	from := s.firstChange(s.clusters[cluster], fams)
	s.mu.RUnlock()
	if from == len(fams) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.clusters[cluster]
	if held == nil {
		held = map[string]*variant{}
		s.clusters[cluster] = held
	}
	for _, f := range fams[from:] {
		if empty(f) {
			continue
		}
		if len(f.Name) > s.limits.MaxHelpBytes || len(f.Unit) > s.limits.MaxHelpBytes {
			s.dropped.WithLabelValues(reasonLength).Inc()
			continue
		}
		old := held[f.Name]
		if old == nil && len(held) >= s.limits.MaxFamiliesPerCluster {
			s.dropped.WithLabelValues(reasonFamilies).Inc()
			continue
		}
		md := metadata.Metadata{Type: canonicalType(f.Type), Unit: f.Unit, Help: s.cut(f.Help)}
		if old != nil && old.md == md {
			continue
		}
		if len(md.Help) < len(f.Help) {
			s.truncated.Inc()
		}
		v := s.intern(f.Name, md)
		if old != nil {
			s.release(old)
		} else {
			s.entries.Inc()
		}
		held[v.family.name] = v
	}
	if len(held) == 0 {
		delete(s.clusters, cluster)
	}
}

// firstChange is the index of the first of fams that would change held, or
// len(fams).
func (s *Store) firstChange(held map[string]*variant, fams []Family) int {
	for i, f := range fams {
		if empty(f) {
			continue
		}
		v := held[f.Name]
		if v == nil || v.md.Type != canonicalType(f.Type) || v.md.Unit != f.Unit || v.md.Help != s.cut(f.Help) {
			return i
		}
	}
	return len(fams)
}

// empty reports whether f carries nothing worth serving.
func empty(f Family) bool {
	return f.Name == "" || (canonicalType(f.Type) == model.MetricTypeUnknown && f.Help == "" && f.Unit == "")
}

// cut shortens help to the limit at a character boundary.
func (s *Store) cut(help string) string {
	n := s.limits.MaxHelpBytes
	if len(help) <= n {
		return help
	}
	for n > 0 && !utf8.RuneStart(help[n]) {
		n--
	}
	return help[:n]
}

// intern returns the shared variant of the family's metadata, counting one
// more cluster on it; it copies what it keeps.
func (s *Store) intern(name string, md metadata.Metadata) *variant {
	f := s.families[name]
	if f == nil {
		f = &family{name: strings.Clone(name), variants: map[metadata.Metadata]*variant{}}
		s.families[f.name] = f
	}
	v := f.variants[md]
	if v == nil {
		md = metadata.Metadata{Type: md.Type, Unit: strings.Clone(md.Unit), Help: strings.Clone(md.Help)}
		v = &variant{family: f, md: md}
		f.variants[md] = v
	}
	v.refs++
	return v
}

// release counts one cluster less on v, dropping what no cluster holds.
func (s *Store) release(v *variant) {
	v.refs--
	if v.refs > 0 {
		return
	}
	delete(v.family.variants, v.md)
	if len(v.family.variants) == 0 {
		delete(s.families, v.family.name)
	}
}

// Forget drops everything the cluster sent: the cluster is gone.
func (s *Store) Forget(cluster string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := s.clusters[cluster]
	for _, v := range held {
		s.release(v)
	}
	s.entries.Sub(float64(len(held)))
	delete(s.clusters, cluster)
}

// Query returns the metadata of every family, or of the one named metric,
// merged over the clusters as Prometheus's /api/v1/metadata merges its
// targets': each family's distinct metadata, at most limitPerMetric of
// them when that is positive, for at most limit families when that is not
// negative (0 returns none, as Prometheus does). Families come in name
// order, and a family's metadata by type, unit and help, so that limits
// cut the same way every time.
func (s *Store) Query(metric string, limit, limitPerMetric int) map[string][]metadata.Metadata {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var names []string
	if metric != "" {
		if _, ok := s.families[metric]; ok {
			names = []string{metric}
		}
	} else {
		names = make([]string, 0, len(s.families))
		for name := range s.families {
			names = append(names, name)
		}
		slices.Sort(names)
	}
	out := map[string][]metadata.Metadata{}
	for _, name := range names {
		if limit >= 0 && len(out) >= limit {
			break
		}
		f := s.families[name]
		mds := make([]metadata.Metadata, 0, len(f.variants))
		for md := range f.variants {
			mds = append(mds, md)
		}
		slices.SortFunc(mds, func(a, b metadata.Metadata) int {
			return cmp.Or(strings.Compare(string(a.Type), string(b.Type)), strings.Compare(a.Unit, b.Unit), strings.Compare(a.Help, b.Help))
		})
		if limitPerMetric > 0 && len(mds) > limitPerMetric {
			mds = mds[:limitPerMetric]
		}
		out[name] = mds
	}
	return out
}

// Cluster returns the families the cluster sent, by name.
func (s *Store) Cluster(cluster string) []Family {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Family, 0, len(s.clusters[cluster]))
	for name, v := range s.clusters[cluster] {
		out = append(out, Family{Name: name, Metadata: v.md})
	}
	slices.SortFunc(out, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// canonicalType is t as one of Prometheus's type constants, which every
// kept metadata shares; a type Prometheus does not know is unknown.
func canonicalType(t model.MetricType) model.MetricType {
	for _, known := range knownTypes {
		if t == known {
			return known
		}
	}
	return model.MetricTypeUnknown
}

var knownTypes = []model.MetricType{
	model.MetricTypeCounter, model.MetricTypeGauge, model.MetricTypeHistogram, model.MetricTypeGaugeHistogram,
	model.MetricTypeSummary, model.MetricTypeInfo, model.MetricTypeStateset,
}

// FromProto is the metadata of remote write's fields: the metric type
// enum, which 1.0 (MetricMetadata.type) and 2.0 (Metadata.type) number
// alike, help and unit.
func FromProto(typ int32, help, unit string) metadata.Metadata {
	return metadata.Metadata{Type: typeOfProto(typ), Help: help, Unit: unit}
}

func typeOfProto(t int32) model.MetricType {
	switch t {
	case 1:
		return model.MetricTypeCounter
	case 2:
		return model.MetricTypeGauge
	case 3:
		return model.MetricTypeHistogram
	case 4:
		return model.MetricTypeGaugeHistogram
	case 5:
		return model.MetricTypeSummary
	case 6:
		return model.MetricTypeInfo
	case 7:
		return model.MetricTypeStateset
	}
	return model.MetricTypeUnknown
}
