package template

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Reasons of an object's verdict, as status shows them.
const (
	ReasonFoundAsSpecified  = "found as specified"
	ReasonNotFound          = "not found"
	ReasonNotAsSpecified    = "found but not as specified"
	ReasonFound             = "found"
	ReasonMissingAsExpected = "missing as expected"
)

// Action is what enforcing does about an object.
type Action int

const (
	// None: nothing to do (compliant, or nothing can be done).
	None Action = iota
	// Create the missing object (Write).
	Create
	// Apply Write with server-side apply (musthave).
	Apply
	// Update the object to Write (mustonlyhave).
	Update
	// Delete the object (mustnothave).
	Delete
)

func (a Action) String() string {
	return [...]string{"none", "create", "apply", "update", "delete"}[a]
}

// Result is the verdict on one object.
type Result struct {
	// Namespace and Name say which object; Name is empty when a template
	// without a name found nothing.
	Namespace, Name string
	// Existing is the object found, nil when there is none.
	Existing  *unstructured.Unstructured
	Compliant bool
	Reason    string
	Diffs     []Diff
	// Action and Write say what enforcing does.
	Action Action
	Write  *unstructured.Unstructured
}

// Outcome is the verdict of a template in one scope.
type Outcome struct {
	Compliant bool
	Objects   []Result
}

// Evaluate decides the template's compliance in one scope: namespace (""
// for a cluster-scoped kind), from the objects found there: for a template
// with a name, the object of that name if it exists; without one, every
// object of the kind.
//
// A template without a name is met, for musthave and mustonlyhave, by any
// one object that complies; it names nothing to create, so enforcing
// changes nothing.
func (t *Template) Evaluate(namespace string, found []*unstructured.Unstructured) Outcome {
	if t.Type == fleetv1.MustNotHave {
		return t.evaluateMustNotHave(namespace, found)
	}
	if t.Name != "" {
		if len(found) == 0 {
			return Outcome{Objects: []Result{{Namespace: namespace, Name: t.Name, Reason: ReasonNotFound,
				Action: Create, Write: t.toCreate(namespace)}}}
		}
		r := t.result(found[0])
		return Outcome{Compliant: r.Compliant, Objects: []Result{r}}
	}
	var ok, bad []Result
	for _, o := range found {
		r := t.result(o)
		if r.Compliant {
			ok = append(ok, r)
		} else {
			r.Action, r.Write = None, nil
			bad = append(bad, r)
		}
	}
	switch {
	case len(ok) > 0:
		return Outcome{Compliant: true, Objects: ok}
	case len(bad) > 0:
		return Outcome{Objects: bad}
	}
	return Outcome{Objects: []Result{{Namespace: namespace, Reason: ReasonNotFound}}}
}

func (t *Template) result(o *unstructured.Unstructured) Result {
	r := Result{Namespace: o.GetNamespace(), Name: o.GetName(), Existing: o}
	diffs, write := t.Compare(o)
	if len(diffs) == 0 {
		r.Compliant, r.Reason = true, ReasonFoundAsSpecified
		return r
	}
	r.Reason, r.Diffs, r.Write = ReasonNotAsSpecified, diffs, write
	r.Action = Apply
	if t.Type == fleetv1.MustOnlyHave {
		r.Action = Update
	}
	return r
}

func (t *Template) evaluateMustNotHave(namespace string, found []*unstructured.Unstructured) Outcome {
	out := Outcome{Compliant: true}
	for _, o := range found {
		if t.Matches(o) {
			out.Compliant = false
			out.Objects = append(out.Objects, Result{Namespace: o.GetNamespace(), Name: o.GetName(), Existing: o,
				Reason: ReasonFound, Action: Delete})
		}
	}
	switch {
	case !out.Compliant:
	case t.Name != "" && len(found) > 0:
		// The object of that name is there but is not the one described.
		out.Objects = []Result{{Namespace: namespace, Name: t.Name, Existing: found[0], Compliant: true, Reason: ReasonNotAsSpecified}}
	default:
		out.Objects = []Result{{Namespace: namespace, Name: t.Name, Compliant: true, Reason: ReasonMissingAsExpected}}
	}
	return out
}

// toCreate is the object to create in namespace.
func (t *Template) toCreate(namespace string) *unstructured.Unstructured {
	o := t.Object.DeepCopy()
	if namespace != "" {
		o.SetNamespace(namespace)
	} else {
		unstructured.RemoveNestedField(o.Object, "metadata", "namespace")
	}
	return o
}
