package workset

import (
	"fmt"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func TestTemplateHash(t *testing.T) {
	spec := func(raw string) *fleetv1.ManifestWorkSpec {
		return &fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{manifest(raw)}}}
	}
	a := templateHash(spec(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"v"}}`))
	reordered := templateHash(spec(`{ "data": {"k": "v"}, "kind": "ConfigMap", "metadata": {"name": "x"}, "apiVersion": "v1" }`))
	other := templateHash(spec(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"w"}}`))
	if a != reordered {
		t.Errorf("key order changes the hash: %s vs %s", a, reordered)
	}
	if a == other {
		t.Errorf("different data, same hash %s", a)
	}
	if len(a) != 16 {
		t.Errorf("hash %q: want 16 hex characters", a)
	}
}

func revs(numbers ...int64) revisionSet {
	var rs revisionSet
	for _, n := range numbers {
		rs.items = append(rs.items, &fleetv1.ManifestWorkSetRevision{Spec: fleetv1.ManifestWorkSetRevisionSpec{Revision: n, TemplateHash: fmt.Sprint("h", n%3)}})
	}
	return rs
}

func TestPrunable(t *testing.T) {
	for _, tc := range []struct {
		name  string
		have  []int64
		limit int
		keep  map[int64]bool
		want  []int64
	}{
		{name: "within the limit", have: []int64{1, 2, 3}, limit: 3},
		{name: "oldest go first", have: []int64{1, 2, 3, 4, 5}, limit: 3, keep: map[int64]bool{5: true}, want: []int64{1, 2}},
		{name: "a revision a cluster runs stays", have: []int64{1, 2, 3, 4, 5}, limit: 3, keep: map[int64]bool{1: true, 5: true}, want: []int64{2, 3}},
		{name: "kept revisions may exceed the limit", have: []int64{1, 2, 3}, limit: 1, keep: map[int64]bool{1: true, 2: true, 3: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			for _, r := range prunable(revs(tc.have...), tc.limit, tc.keep) {
				got = append(got, r.Spec.Revision)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("prunable = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRevisionLookup(t *testing.T) {
	rs := revs(1, 2, 3, 4) // hashes h1 h2 h0 h1
	if r := rs.byHash("h1"); r == nil || r.Spec.Revision != 4 {
		t.Errorf("byHash(h1) = %v, want the newest revision with it, 4", r)
	}
	if r := rs.byNumber(2); r == nil || r.Spec.TemplateHash != "h2" {
		t.Errorf("byNumber(2) = %v", r)
	}
	if rs.byNumber(9) != nil || rs.byHash("nope") != nil {
		t.Error("lookups of missing revisions found something")
	}
}

func TestChangedBy(t *testing.T) {
	at := func(s int) *metav1.Time { return &metav1.Time{Time: time.Unix(int64(s), 0)} }
	fields := func(s string) *metav1.FieldsV1 { return &metav1.FieldsV1{Raw: []byte(s)} }
	mws := &fleetv1.ManifestWorkSet{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
		{Manager: "kubectl-create", Time: at(1), FieldsV1: fields(`{"f:spec":{}}`)},
		{Manager: "kubectl-edit", Time: at(5), FieldsV1: fields(`{"f:spec":{"f:manifestWorkTemplate":{}}}`)},
		{Manager: "labeller", Time: at(9), FieldsV1: fields(`{"f:metadata":{"f:labels":{}}}`)},
		{Manager: "fleetpulse-hub", Time: at(9), Subresource: "status", FieldsV1: fields(`{"f:status":{}}`)},
	}}}
	if got := changedBy(mws); got != "kubectl-edit" {
		t.Errorf("changedBy = %q, want the newest manager of spec, kubectl-edit", got)
	}
	mws.Annotations = map[string]string{fleetv1.AnnotationChangedBy: "alice"}
	if got := changedBy(mws); got != "alice" {
		t.Errorf("changedBy with the annotation = %q, want alice", got)
	}
}

func TestHashCacheFollowsGenerations(t *testing.T) {
	w := &fleetv1.ManifestWork{ObjectMeta: metav1.ObjectMeta{UID: types.UID("u1"), Generation: 1},
		Spec: fleetv1.ManifestWorkSpec{Workload: fleetv1.ManifestsTemplate{Manifests: []fleetv1.Manifest{manifest(`{"a":1}`)}}}}
	var c hashCache
	first := c.hashes("s", map[string]*fleetv1.ManifestWork{"c1": w})["c1"]
	// Same generation: the cached hash, even if the object in hand differs
	// (the cache is keyed by what the apiserver versions).
	w2 := w.DeepCopy()
	w2.Spec.Workload.Manifests[0] = manifest(`{"a":2}`)
	if got := c.hashes("s", map[string]*fleetv1.ManifestWork{"c1": w2})["c1"]; got != first {
		t.Errorf("same generation hashed again: %s, want the cached %s", got, first)
	}
	w2.Generation = 2
	if got := c.hashes("s", map[string]*fleetv1.ManifestWork{"c1": w2})["c1"]; got == first || got != templateHash(&w2.Spec) {
		t.Errorf("a new generation keeps the old hash: %s", got)
	}
	c.forget("s")
	if len(c.sets) != 0 {
		t.Errorf("forget left %v", c.sets)
	}
}
