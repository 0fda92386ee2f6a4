package template

import (
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Compare compares one existing object with the template and returns the
// differences. For musthave and mustonlyhave no differences means
// compliant, and write is the object to write to make it so (nil when
// compliant): a server-side-apply configuration for musthave, the whole
// object with the template's fields replaced (resource version kept, for an
// update) for mustonlyhave. For mustnothave no differences means the object
// matches the template (a violation), and write is nil.
func (t *Template) Compare(existing *unstructured.Unstructured) (diffs []Diff, write *unstructured.Unstructured) {
	c := &comparer{secret: t.secret}
	if t.Type == fleetv1.MustOnlyHave {
		c.compareExact(t, existing)
		if len(c.diffs) == 0 {
			return nil, nil
		}
		return c.diffs, t.replaced(existing)
	}
	// Most objects comply: find out cheaply before building the write.
	if t.Type == fleetv1.MustNotHave || t.Matches(existing) {
		c.compareSubset(t, existing)
		return c.diffs, nil
	}
	c.merge = true
	merged := c.compareSubset(t, existing)
	return c.diffs, merged
}

// Matches reports whether obj carries the template's fields (musthave's
// comparison), whatever the template's type.
func (t *Template) Matches(obj *unstructured.Unstructured) bool {
	c := &comparer{secret: t.secret, quiet: true}
	c.compareSubset(t, obj)
	return !c.failed
}

// SameAs reports whether a and b are equal in every field the template
// names (exactly, as mustonlyhave compares), so that an object the
// apiserver returned from a dry-run write can be told apart from the one it
// would replace: equal means the write changes nothing the template is
// about, and the object complies once defaults are applied.
func (t *Template) SameAs(a, b *unstructured.Unstructured) bool {
	c := &comparer{quiet: true}
	for _, f := range t.fields() {
		av, aok := a.Object[f]
		bv, bok := b.Object[f]
		if aok != bok {
			return false
		}
		c.exact(root(f), av, bv, true)
	}
	for _, f := range []string{"annotations", "labels"} {
		if t.hasMeta(f) {
			c.exact(root("metadata").key(f), metaMap(a, f), metaMap(b, f), true)
		}
	}
	return !c.failed
}

// compareSubset compares as musthave and returns the apply configuration:
// apiVersion, kind, name, namespace, the template's labels and annotations,
// and each of the template's fields merged into the object's.
func (c *comparer) compareSubset(t *Template, existing *unstructured.Unstructured) *unstructured.Unstructured {
	for _, f := range []string{"annotations", "labels"} {
		if want, ok := t.meta(f); ok {
			got := metaMap(existing, f)
			c.subset(root("metadata").key(f), without(want, f), without(got, f), got != nil)
		}
	}
	var out map[string]any
	if c.merge {
		md := map[string]any{"name": existing.GetName()}
		if ns := existing.GetNamespace(); ns != "" {
			md["namespace"] = ns
		}
		for _, f := range []string{"annotations", "labels"} {
			if want, ok := t.meta(f); ok {
				md[f] = runtime.DeepCopyJSONValue(want)
			}
		}
		out = map[string]any{"apiVersion": t.Object.GetAPIVersion(), "kind": t.Object.GetKind(), "metadata": md}
	}
	for _, f := range t.fields() {
		got, ok := existing.Object[f]
		merged := c.subset(root(f), t.Object.Object[f], got, ok)
		if c.merge {
			out[f] = runtime.DeepCopyJSONValue(merged)
		}
	}
	if !c.merge {
		return nil
	}
	return &unstructured.Unstructured{Object: out}
}

// compareExact compares as mustonlyhave.
func (c *comparer) compareExact(t *Template, existing *unstructured.Unstructured) {
	for _, f := range []string{"annotations", "labels"} {
		if want, ok := t.meta(f); ok {
			got := metaMap(existing, f)
			c.exact(root("metadata").key(f), without(want, f), without(got, f), true)
		}
	}
	for _, f := range t.fields() {
		got, ok := existing.Object[f]
		c.exact(root(f), t.Object.Object[f], got, ok)
	}
}

// replaced is existing with the template's fields replaced by the
// template's, for an update.
func (t *Template) replaced(existing *unstructured.Unstructured) *unstructured.Unstructured {
	out := existing.DeepCopy()
	for _, f := range t.fields() {
		out.Object[f] = runtime.DeepCopyJSONValue(t.Object.Object[f])
	}
	if want, ok := t.meta("labels"); ok {
		out.SetLabels(toStrings(want))
	}
	if want, ok := t.meta("annotations"); ok {
		keep := toStrings(want)
		for k, v := range existing.GetAnnotations() {
			if slices.Contains(ignoredAnnotations, k) {
				keep[k] = v
			}
		}
		out.SetAnnotations(keep)
	}
	return out
}

func metaMap(o *unstructured.Unstructured, field string) map[string]any {
	md, _ := o.Object["metadata"].(map[string]any)
	m, _ := md[field].(map[string]any)
	return m
}

// without drops the ignored annotations from an annotations map.
func without(m map[string]any, field string) map[string]any {
	if field != "annotations" || m == nil {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if !slices.Contains(ignoredAnnotations, k) {
			out[k] = v
		}
	}
	return out
}

func toStrings(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// comparer collects differences. quiet comparers only note that there was
// one.
type comparer struct {
	secret bool
	quiet  bool
	// merge: build the merged values (musthave's write); otherwise subset
	// returns nil.
	merge  bool
	failed bool
	diffs  []Diff
}

func (c *comparer) add(p path, want, got any) {
	c.failed = true
	if c.quiet {
		return
	}
	redact := c.secret && p.under("data")
	c.diffs = append(c.diffs, Diff{Path: p.String(), Wanted: render(want, redact), Found: render(got, redact)})
}

// subset checks that got carries want (musthave) and returns want merged
// into got.
func (c *comparer) subset(p path, want, got any, present bool) any {
	if want == nil {
		return got // null: any value
	}
	if !present {
		c.add(p, want, absent{})
		return want
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			c.add(p, want, got)
			return want
		}
		if c.quiet {
			for k, wv := range w {
				gv, ok := g[k]
				if c.subset(p.key(k), wv, gv, ok); c.failed {
					return nil
				}
			}
			return nil
		}
		if !c.merge {
			for _, k := range sortedKeys(w) {
				gv, ok := g[k]
				c.subset(p.key(k), w[k], gv, ok)
			}
			return nil
		}
		merged := make(map[string]any, len(g)+len(w))
		for k, v := range g {
			merged[k] = v
		}
		for _, k := range sortedKeys(w) {
			gv, ok := g[k]
			merged[k] = c.subset(p.key(k), w[k], gv, ok)
		}
		return merged
	case []any:
		g, ok := got.([]any)
		if !ok {
			c.add(p, want, got)
			return want
		}
		return c.subsetList(p, w, g)
	default:
		if !scalarEqual(want, got) {
			c.add(p, want, got)
		}
		return want
	}
}

// subsetList checks that got holds each item of want: named objects by
// name, anything else by a counterpart that carries it. The merged list is
// got with matched named items merged and missing items appended.
func (c *comparer) subsetList(p path, want, got []any) []any {
	var merged []any
	if c.merge {
		merged = slices.Clone(got)
	}
	used := make([]bool, len(got))
	for _, item := range want {
		if name, ok := itemName(item); ok {
			j := slices.IndexFunc(got, func(g any) bool { n, ok := itemName(g); return ok && n == name })
			if j < 0 {
				c.add(p.named(name), item, absent{})
				merged = append(merged, item)
				continue
			}
			used[j] = true
			if m := c.subset(p.named(name), item, got[j], true); c.merge {
				merged[j] = m
			}
			continue
		}
		j := -1
		for k, g := range got {
			if !used[k] && carries(item, g) {
				j = k
				break
			}
		}
		if j < 0 {
			c.add(p, item, noMatch{})
			merged = append(merged, item)
			continue
		}
		used[j] = true
	}
	if !c.merge {
		return nil
	}
	return merged
}

// carries reports whether got carries want, quietly.
func carries(want, got any) bool {
	q := &comparer{quiet: true}
	q.subset(path{}, want, got, true)
	return !q.failed
}

// exact checks that got is want (mustonlyhave): extra keys and items are
// differences too.
func (c *comparer) exact(p path, want, got any, present bool) {
	if want == nil {
		return // null: any value
	}
	if !present {
		c.add(p, want, absent{})
		return
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return
			}
			c.add(p, want, got)
			return
		}
		keys := sortedKeys(w)
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !wok:
				c.add(p.key(k), absent{}, gv)
			default:
				c.exact(p.key(k), wv, gv, gok)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			if got == nil && len(w) == 0 {
				return
			}
			c.add(p, want, got)
			return
		}
		c.exactList(p, w, g)
	default:
		if !scalarEqual(want, got) {
			c.add(p, want, got)
		}
	}
}

// exactList matches items as subsetList does, but exactly, and reports
// the items of got that the template does not hold.
func (c *comparer) exactList(p path, want, got []any) {
	used := make([]bool, len(got))
	for _, item := range want {
		if name, ok := itemName(item); ok {
			j := slices.IndexFunc(got, func(g any) bool { n, ok := itemName(g); return ok && n == name })
			if j < 0 {
				c.add(p.named(name), item, absent{})
				continue
			}
			used[j] = true
			c.exact(p.named(name), item, got[j], true)
			continue
		}
		j := -1
		for k, g := range got {
			if !used[k] && same(item, g) {
				j = k
				break
			}
		}
		if j < 0 {
			c.add(p, item, noMatch{})
			continue
		}
		used[j] = true
	}
	for k, g := range got {
		if used[k] {
			continue
		}
		if name, ok := itemName(g); ok {
			c.add(p.named(name), absent{}, g)
		} else {
			c.add(p.index(k), absent{}, g)
		}
	}
}

// same reports whether a and b are equal as exact compares them.
func same(a, b any) bool {
	q := &comparer{quiet: true}
	q.exact(path{}, a, b, true)
	return !q.failed
}

// itemName is a list item's name, when it is an object with one.
func itemName(item any) (string, bool) {
	m, ok := item.(map[string]any)
	if !ok {
		return "", false
	}
	n, ok := m["name"].(string)
	return n, ok && n != ""
}

// scalarEqual compares leaves: numbers by value, strings also as resource
// quantities.
func scalarEqual(a, b any) bool {
	if fa, ok := number(a); ok {
		fb, ok := number(b)
		return ok && fa == fb
	}
	switch a := a.(type) {
	case string:
		b, ok := b.(string)
		if !ok {
			return false
		}
		if a == b {
			return true
		}
		qa, err1 := resource.ParseQuantity(a)
		qb, err2 := resource.ParseQuantity(b)
		return err1 == nil && err2 == nil && qa.Cmp(qb) == 0
	case bool:
		b, ok := b.(bool)
		return ok && a == b
	case nil:
		return b == nil
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int64:
		return float64(n), true
	case int:
		return float64(n), true
	case int32:
		return float64(n), true
	case float64:
		return n, true
	case float32:
		return float64(n), true
	}
	return 0, false
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortStrings(s []string) { sort.Strings(s) }
