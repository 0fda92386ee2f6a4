// Package template compares a Policy's object templates with the objects a
// cluster holds, without talking to the cluster: given a template and the
// objects found where it applies, it decides compliance, names every
// differing field (path, wanted, found; the values of Secrets redacted), and
// builds the object to write when the policy is enforced.
//
// The three compliance types:
//
//   - musthave: the object exists and carries the template's fields with
//     equal values. Maps are compared as subsets (other keys are free); a
//     list must contain each of the template's items: an item that is an
//     object with a name is matched by name and compared as a subset, any
//     other item must have an equal (subset-equal) counterpart. The object
//     to write is a server-side-apply configuration of the template's
//     fields, with lists merged into what the object holds, so enforcing
//     never drops a list item someone else added.
//   - mustonlyhave: the object exists and each field the template names
//     (its top-level fields, and metadata.labels and metadata.annotations
//     when named) is exactly the template's: extra map keys and extra list
//     items under them are differences, and enforcing writes the object with
//     those fields replaced by the template's.
//   - mustnothave: no object matches the template. With a name, the object
//     of that name matches when it carries the template's fields (musthave's
//     comparison; a template of only a name matches any object so named);
//     without one, every object of the kind that carries the template's
//     fields matches. A match is a violation, deleted when enforcing.
//
// Of metadata, only labels and annotations are compared (name and
// namespace say which object it is). Annotations written by tools
// (kubectl's last-applied-configuration) and the engine's own
// AnnotationCreatedBy are never differences. Strings that are resource
// quantities compare as quantities ("1000m" equals "1"), numbers by value.
// A null in a template means "any value". A Secret template's stringData is
// compared and written as the data it becomes.
package template

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// AnnotationCreatedBy marks an object the policy engine created, with the
// policy's "<namespace>/<name>", so that pruning (DeleteIfCreated) finds
// it. Comparisons ignore it.
const AnnotationCreatedBy = "policy.fleetpulse.io/created-by"

// ignoredAnnotations are never differences, and survive a mustonlyhave
// write.
var ignoredAnnotations = []string{AnnotationCreatedBy, "kubectl.kubernetes.io/last-applied-configuration"}

// Template is a parsed object template.
type Template struct {
	// Type is the compliance type, lower case.
	Type fleetv1.ComplianceType
	// Object is the object definition, as written but for a Secret's
	// stringData, which is folded into data.
	Object *unstructured.Unstructured
	// RecordDiff says whether differences belong in status.
	RecordDiff bool
	// GVK, Name and Namespace are the object's; Name and Namespace may be
	// empty.
	GVK             schema.GroupVersionKind
	Name, Namespace string

	secret bool
}

// Parse reads and checks an object template.
func Parse(ot fleetv1.ObjectTemplate) (*Template, error) {
	t := &Template{RecordDiff: ot.RecordDiff != fleetv1.RecordDiffNone}
	switch ct := fleetv1.ComplianceType(strings.ToLower(string(ot.ComplianceType))); ct {
	case fleetv1.MustHave, fleetv1.MustOnlyHave, fleetv1.MustNotHave:
		t.Type = ct
	default:
		return nil, fmt.Errorf("complianceType %q: want musthave, mustonlyhave or mustnothave", ot.ComplianceType)
	}
	raw := ot.ObjectDefinition.Raw
	if len(raw) == 0 && ot.ObjectDefinition.Object != nil {
		u, ok := ot.ObjectDefinition.Object.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("objectDefinition: unexpected %T", ot.ObjectDefinition.Object)
		}
		raw, _ = u.MarshalJSON()
	}
	if len(raw) == 0 {
		return nil, errors.New("objectDefinition is empty")
	}
	var probe map[string]any
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("objectDefinition is not a JSON object: %w", err)
	}
	for _, f := range []string{"apiVersion", "kind"} {
		if s, _ := probe[f].(string); s == "" {
			return nil, fmt.Errorf("objectDefinition names no %s", f)
		}
	}
	t.Object = &unstructured.Unstructured{}
	if err := t.Object.UnmarshalJSON(raw); err != nil {
		return nil, fmt.Errorf("objectDefinition: %w", err)
	}
	o := t.Object
	t.GVK = o.GroupVersionKind()
	if _, err := schema.ParseGroupVersion(o.GetAPIVersion()); err != nil {
		return nil, fmt.Errorf("objectDefinition: apiVersion %q: %w", o.GetAPIVersion(), err)
	}
	if md, ok := o.Object["metadata"]; ok && md != nil {
		if _, ok := md.(map[string]any); !ok {
			return nil, fmt.Errorf("objectDefinition: metadata is a %T, not an object", md)
		}
		for _, f := range []string{"name", "namespace"} {
			if v, ok := md.(map[string]any)[f]; ok && v != nil {
				if _, ok := v.(string); !ok {
					return nil, fmt.Errorf("objectDefinition: metadata.%s is a %T, not a string", f, v)
				}
			}
		}
	}
	t.Name, t.Namespace = o.GetName(), o.GetNamespace()
	if t.Type == fleetv1.MustOnlyHave && len(t.fields()) == 0 && !t.hasMeta("labels") && !t.hasMeta("annotations") {
		// Nothing to be exact about: it only asks that the object exists.
		t.Type = fleetv1.MustHave
	}
	t.secret = t.GVK.Group == "" && t.GVK.Kind == "Secret"
	if t.secret {
		if err := foldStringData(o); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// foldStringData moves a Secret's stringData into data, base64-encoded, as
// the apiserver does on write (stringData wins over data).
func foldStringData(o *unstructured.Unstructured) error {
	sd, ok := o.Object["stringData"]
	if !ok {
		return nil
	}
	delete(o.Object, "stringData")
	m, ok := sd.(map[string]any)
	if !ok {
		return fmt.Errorf("objectDefinition: stringData is a %T, not an object", sd)
	}
	data, _ := o.Object["data"].(map[string]any)
	if data == nil {
		data = map[string]any{}
	}
	for k, v := range m {
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("objectDefinition: stringData.%s is a %T, not a string", k, v)
		}
		data[k] = base64.StdEncoding.EncodeToString([]byte(s))
	}
	o.Object["data"] = data
	return nil
}

// fields returns the template's top-level fields other than apiVersion,
// kind and metadata.
func (t *Template) fields() []string {
	var out []string
	for k := range t.Object.Object {
		switch k {
		case "apiVersion", "kind", "metadata":
		default:
			out = append(out, k)
		}
	}
	sortStrings(out)
	return out
}

// meta returns metadata.<field> of the template (labels or annotations).
func (t *Template) meta(field string) (map[string]any, bool) {
	md, _ := t.Object.Object["metadata"].(map[string]any)
	v, ok := md[field]
	if !ok || v == nil {
		return nil, false
	}
	m, _ := v.(map[string]any)
	return m, true
}

func (t *Template) hasMeta(field string) bool {
	_, ok := t.meta(field)
	return ok
}

// String names the template's object: "ConfigMap team-a/settings".
func (t *Template) String() string {
	switch {
	case t.Name == "":
		return t.GVK.Kind
	case t.Namespace == "":
		return t.GVK.Kind + " " + t.Name
	}
	return t.GVK.Kind + " " + t.Namespace + "/" + t.Name
}
