package workset

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// DefaultRevisionHistoryLimit is how many revisions a set keeps when its
// spec does not say.
const DefaultRevisionHistoryLimit = 10

// templateHash identifies a template by its JSON with sorted keys, so that
// manifests differing only in key order or spacing hash alike.
func templateHash(spec *fleetv1.ManifestWorkSpec) string { return hashOf(spec) }

// hashOf is the SHA-256 of v's JSON with sorted keys, in hex, cut to 16.
func hashOf(v any) string {
	b, err := json.Marshal(asJSON(v))
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:16]
}

// asJSON turns v into generic JSON values (maps, slices, numbers), whose
// encoding sorts keys.
func asJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil
	}
	return out
}

// revisionSet is a set's revisions, oldest first.
type revisionSet struct {
	items []*fleetv1.ManifestWorkSetRevision
}

// byNumber finds a revision; nil when it is not kept.
func (rs revisionSet) byNumber(n int64) *fleetv1.ManifestWorkSetRevision {
	for _, r := range rs.items {
		if r.Spec.Revision == n {
			return r
		}
	}
	return nil
}

// byHash finds the newest revision with a template hash.
func (rs revisionSet) byHash(hash string) *fleetv1.ManifestWorkSetRevision {
	for i := len(rs.items) - 1; i >= 0; i-- {
		if rs.items[i].Spec.TemplateHash == hash {
			return rs.items[i]
		}
	}
	return nil
}

func (rs revisionSet) latest() *fleetv1.ManifestWorkSetRevision {
	if len(rs.items) == 0 {
		return nil
	}
	return rs.items[len(rs.items)-1]
}

// revisionName is the object name of a set's revision.
func revisionName(set string, n int64) string { return set + "-" + strconv.FormatInt(n, 10) }

// listRevisions reads a set's revisions from the apiserver.
func (r *reconciler) listRevisions(ctx context.Context, mws *fleetv1.ManifestWorkSet) (revisionSet, error) {
	var list fleetv1.ManifestWorkSetRevisionList
	if err := r.api.List(ctx, &list, client.InNamespace(mws.Namespace),
		client.MatchingLabels{fleetv1.LabelManifestWorkSet: ownerKey(mws.Namespace, mws.Name)}); err != nil {
		return revisionSet{}, fmt.Errorf("list revisions: %w", err)
	}
	var rs revisionSet
	for i := range list.Items {
		if list.Items[i].Spec.ManifestWorkSet == mws.Name {
			rs.items = append(rs.items, &list.Items[i])
		}
	}
	slices.SortFunc(rs.items, func(a, b *fleetv1.ManifestWorkSetRevision) int {
		return int(a.Spec.Revision - b.Spec.Revision)
	})
	return rs, nil
}

// ensureRevision returns the revision of a template, writing a new one,
// numbered one past the latest, when the template differs from the latest
// revision's. A chart set's revision records its source hash and chart.
func (r *reconciler) ensureRevision(ctx context.Context, mws *fleetv1.ManifestWorkSet, rs *revisionSet, tmpl *fleetv1.ManifestWorkSpec,
	source string, chart *fleetv1.RenderedChart) (*fleetv1.ManifestWorkSetRevision, error) {
	hash := templateHash(tmpl)
	if latest := rs.latest(); latest != nil && latest.Spec.TemplateHash == hash && latest.Spec.SourceHash == source {
		return latest, nil
	}
	n := int64(1)
	if latest := rs.latest(); latest != nil {
		n = latest.Spec.Revision + 1
	}
	rollbackOf, _ := strconv.ParseInt(mws.Annotations[fleetv1.AnnotationRollbackOf], 10, 64)
	rev := &fleetv1.ManifestWorkSetRevision{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: mws.Namespace, Name: revisionName(mws.Name, n),
			Labels: map[string]string{fleetv1.LabelManifestWorkSet: ownerKey(mws.Namespace, mws.Name), fleetv1.LabelTemplateHash: hash},
		},
		Spec: fleetv1.ManifestWorkSetRevisionSpec{
			ManifestWorkSet: mws.Name, Revision: n, TemplateHash: hash,
			ManifestWorkTemplate: *tmpl.DeepCopy(),
			SourceHash:           source,
			Chart:                chart.DeepCopy(),
			ChangeCause:          mws.Annotations[fleetv1.AnnotationChangeCause],
			ChangedBy:            changedBy(mws),
			RollbackOf:           rollbackOf,
		},
	}
	// The set owns its revisions: they go with it.
	if err := controllerutil.SetControllerReference(mws, rev, r.client.Scheme()); err != nil {
		return nil, fmt.Errorf("own revision %d: %w", n, err)
	}
	if err := r.client.Create(ctx, rev); err != nil {
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create revision %d: %w", n, err)
		}
		// Written by a pass whose write this one's list missed.
		existing := &fleetv1.ManifestWorkSetRevision{}
		if err := r.api.Get(ctx, client.ObjectKeyFromObject(rev), existing); err != nil {
			return nil, fmt.Errorf("read revision %d: %w", n, err)
		}
		if existing.Spec.TemplateHash != hash || existing.Spec.SourceHash != source || existing.Spec.ManifestWorkSet != mws.Name {
			return nil, fmt.Errorf("revision %d exists with template %s, not %s: %w", n, existing.Spec.TemplateHash, hash, errRevisionRace)
		}
		rev = existing
	}
	rs.items = append(rs.items, rev)
	logf.FromContext(ctx).Info("revision written", "revision", n, "hash", hash, "cause", rev.Spec.ChangeCause, "by", rev.Spec.ChangedBy)
	return rev, nil
}

// errRevisionRace: another pass wrote the next revision first; the next
// pass reads it.
var errRevisionRace = errors.New("revision written concurrently")

// changedBy is who changed the set's template: its fleetpulse.io/changed-by
// annotation, else the field manager of the newest write to its spec.
func changedBy(mws *fleetv1.ManifestWorkSet) string {
	if by := mws.Annotations[fleetv1.AnnotationChangedBy]; by != "" {
		return by
	}
	var best *metav1.ManagedFieldsEntry
	for i := range mws.ManagedFields {
		e := &mws.ManagedFields[i]
		if e.Subresource != "" || e.FieldsV1 == nil || !strings.Contains(string(e.FieldsV1.Raw), `"f:spec"`) {
			continue
		}
		if best == nil || (e.Time != nil && (best.Time == nil || !e.Time.Before(best.Time))) {
			best = e
		}
	}
	if best == nil {
		return ""
	}
	return best.Manager
}

// prunable lists the revisions to delete: the oldest past limit, but never
// one in keep (the current, the last good, those clusters run).
func prunable(rs revisionSet, limit int, keep map[int64]bool) []*fleetv1.ManifestWorkSetRevision {
	var out []*fleetv1.ManifestWorkSetRevision
	excess := len(rs.items) - limit
	for _, r := range rs.items {
		if excess <= 0 {
			break
		}
		if keep[r.Spec.Revision] {
			continue
		}
		out = append(out, r)
		excess--
	}
	return out
}

// pruneRevisions deletes the revisions past the set's history limit.
func (r *reconciler) pruneRevisions(ctx context.Context, mws *fleetv1.ManifestWorkSet, rs *revisionSet, keep map[int64]bool) error {
	limit := DefaultRevisionHistoryLimit
	if mws.Spec.RevisionHistoryLimit != nil {
		limit = int(*mws.Spec.RevisionHistoryLimit)
	}
	gone := prunable(*rs, limit, keep)
	for _, rev := range gone {
		if err := r.client.Delete(ctx, rev); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete revision %d: %w", rev.Spec.Revision, err)
		}
	}
	if len(gone) > 0 {
		rs.items = slices.DeleteFunc(rs.items, func(r *fleetv1.ManifestWorkSetRevision) bool { return slices.Contains(gone, r) })
		logf.FromContext(ctx).Info("revisions pruned", "count", len(gone), "limit", limit)
	}
	return nil
}

// hashCache remembers the template hash of each work's generation, so a
// pass over a thousand works does not re-encode a thousand templates.
type hashCache struct {
	mu   sync.Mutex
	sets map[string]map[types.UID]cachedHash
}

type cachedHash struct {
	generation int64
	hash       string
}

// hashes returns the template hash of every work, by cluster, and keeps
// only these works' entries for the set.
func (c *hashCache) hashes(set string, works map[string]*fleetv1.ManifestWork) map[string]string {
	c.mu.Lock()
	old := c.sets[set]
	c.mu.Unlock()
	next := make(map[types.UID]cachedHash, len(works))
	out := make(map[string]string, len(works))
	for cluster, w := range works {
		h, ok := old[w.UID]
		if !ok || h.generation != w.Generation || w.UID == "" {
			h = cachedHash{generation: w.Generation, hash: templateHash(&w.Spec)}
		}
		next[w.UID] = h
		out[cluster] = h.hash
	}
	c.mu.Lock()
	if c.sets == nil {
		c.sets = map[string]map[types.UID]cachedHash{}
	}
	c.sets[set] = next
	c.mu.Unlock()
	return out
}

// forget drops a deleted set's entries.
func (c *hashCache) forget(set string) {
	c.mu.Lock()
	delete(c.sets, set)
	c.mu.Unlock()
}
