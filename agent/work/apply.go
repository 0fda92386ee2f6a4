package work

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// applier applies manifests to the managed cluster and removes them.
type applier struct {
	dyn          dynamic.Interface
	mapper       *mapper
	fieldManager string
}

// manifest is one manifest of a work, decoded and mapped.
type manifest struct {
	ordinal  int
	obj      *unstructured.Unstructured
	id       objectID
	strategy fleetv1.UpdateStrategy
	rules    []fleetv1.FeedbackRule
	hash     string
	err      error // decoding or mapping failed
}

// decode reads a work's manifests and maps each to its resource.
func (a *applier) decode(ctx context.Context, spec *fleetv1.ManifestWorkSpec) []*manifest {
	out := make([]*manifest, len(spec.Workload.Manifests))
	for i, m := range spec.Workload.Manifests {
		mf := &manifest{ordinal: i}
		out[i] = mf
		obj, err := decodeManifest(m)
		if err != nil {
			mf.err = err
			continue
		}
		mf.obj = obj
		gvk := obj.GroupVersionKind()
		mf.id = objectID{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}
		rm, err := a.mapper.mapping(ctx, gvk)
		if err != nil {
			mf.err = fmt.Errorf("map %s: %w", gvk, err)
			continue
		}
		mf.id.Resource = rm.Resource.Resource
		if rm.Scope.Name() == meta.RESTScopeNameNamespace {
			if mf.id.Namespace == "" {
				mf.id.Namespace = "default"
				obj.SetNamespace("default")
			}
		} else {
			mf.id.Namespace = ""
			obj.SetNamespace("")
		}
		mf.strategy, mf.rules = configFor(spec, mf.id)
		mf.hash = manifestHash(obj, mf.strategy)
	}
	return out
}

// decodeManifest reads one manifest and drops the fields that belong to a
// live object, not to a declaration.
func decodeManifest(m fleetv1.Manifest) (*unstructured.Unstructured, error) {
	raw := m.Raw
	if len(raw) == 0 && m.Object != nil {
		var err error
		if raw, err = json.Marshal(m.Object); err != nil {
			return nil, err
		}
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	u := &unstructured.Unstructured{Object: obj}
	switch {
	case u.GetAPIVersion() == "" || u.GetKind() == "":
		return nil, errors.New("manifest lacks apiVersion or kind")
	case u.GetName() == "":
		return nil, fmt.Errorf("manifest %s lacks metadata.name (generateName is not supported: the agent must find what it applied)", u.GetKind())
	}
	for _, f := range []string{"resourceVersion", "uid", "creationTimestamp", "managedFields", "generation", "selfLink", "deletionTimestamp"} {
		unstructured.RemoveNestedField(u.Object, "metadata", f)
	}
	return u, nil
}

// configFor returns the strategy and feedback rules the work configures for
// id: ServerSideApply without force unless said otherwise.
func configFor(spec *fleetv1.ManifestWorkSpec, id objectID) (fleetv1.UpdateStrategy, []fleetv1.FeedbackRule) {
	strategy := fleetv1.UpdateStrategy{Type: fleetv1.UpdateServerSideApply}
	var rules []fleetv1.FeedbackRule
	for _, c := range spec.ManifestConfigs {
		ri := c.ResourceIdentifier
		if ri.Group != id.Group || ri.Resource != id.Resource || ri.Name != id.Name || ri.Namespace != id.Namespace {
			continue
		}
		if c.UpdateStrategy != nil {
			strategy = *c.UpdateStrategy
			if strategy.Type == "" {
				strategy.Type = fleetv1.UpdateServerSideApply
			}
		}
		rules = append(rules, c.FeedbackRules...)
	}
	return strategy, rules
}

// manifestHash names what was applied: the manifest and how.
func manifestHash(obj *unstructured.Unstructured, s fleetv1.UpdateStrategy) string {
	raw, _ := json.Marshal(obj.Object) // map keys sorted
	h := sha256.New()
	h.Write(raw)
	fmt.Fprintf(h, "\x00%s\x00%t", s.Type, s.Force)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// owned says whether a strategy makes the agent own the object, so that it
// records it and deletes it with the work.
func owned(t fleetv1.UpdateStrategyType) bool { return t != fleetv1.UpdateReadOnly }

// applied is the outcome of applying one manifest.
type applied struct {
	before  *unstructured.Unstructured // nil: absent before
	after   *unstructured.Unstructured
	created bool // the agent created the object now
}

// apply applies one manifest by its strategy.
func (a *applier) apply(ctx context.Context, mf *manifest) (*applied, error) {
	ri := a.resource(mf.id)
	before, err := ri.Get(ctx, mf.id.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		before, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", mf.id, err)
	}
	res := &applied{before: before}
	desired := mf.obj.DeepCopy()
	if mf.strategy.Type != fleetv1.UpdateReadOnly {
		labels := desired.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[LabelApplied] = "true"
		desired.SetLabels(labels)
	}
	create := func() error {
		res.after, err = ri.Create(ctx, desired, metav1.CreateOptions{FieldManager: a.fieldManager})
		res.created = err == nil
		return err
	}
	switch mf.strategy.Type {
	case fleetv1.UpdateReadOnly:
		if before == nil {
			return res, apierrors.NewNotFound(mf.id.gvr().GroupResource(), mf.id.Name)
		}
		res.after = before
	case fleetv1.UpdateCreateOnly:
		if before != nil {
			res.after = before
			break
		}
		err = create()
	case fleetv1.UpdateUpdate:
		if before == nil {
			err = create()
			break
		}
		// Replace the object, keeping the labels and annotations others
		// put on it (the manifest's win).
		desired.SetResourceVersion(before.GetResourceVersion())
		desired.SetLabels(merged(before.GetLabels(), desired.GetLabels()))
		desired.SetAnnotations(merged(before.GetAnnotations(), desired.GetAnnotations()))
		res.after, err = ri.Update(ctx, desired, metav1.UpdateOptions{FieldManager: a.fieldManager})
	default:
		res.after, err = ri.Apply(ctx, mf.id.Name, desired, metav1.ApplyOptions{FieldManager: a.fieldManager, Force: mf.strategy.Force})
		res.created = err == nil && before == nil
	}
	if err != nil {
		return res, fmt.Errorf("%s %s: %w", verb(mf.strategy.Type), mf.id, err)
	}
	return res, nil
}

func verb(t fleetv1.UpdateStrategyType) string {
	switch t {
	case fleetv1.UpdateUpdate:
		return "update"
	case fleetv1.UpdateCreateOnly:
		return "create"
	case fleetv1.UpdateReadOnly:
		return "read"
	}
	return "apply"
}

func merged(base, over map[string]string) map[string]string {
	if len(base) == 0 {
		return over
	}
	out := maps.Clone(base)
	maps.Copy(out, over)
	return out
}

// changed says whether applying changed the object beyond its status and
// bookkeeping: what someone else changed since the agent last applied it.
func changed(before, after *unstructured.Unstructured) bool {
	return !reflect.DeepEqual(declared(before), declared(after))
}

func declared(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy().Object
	delete(c, "status")
	for _, f := range []string{"resourceVersion", "managedFields", "generation", "uid", "creationTimestamp"} {
		unstructured.RemoveNestedField(c, "metadata", f)
	}
	return c
}

func (a *applier) resource(id objectID) dynamic.ResourceInterface {
	nri := a.dyn.Resource(id.gvr())
	if id.Namespace != "" {
		return nri.Namespace(id.Namespace)
	}
	return nri
}

// remove deletes an applied object, only if it is still the one the agent
// applied: by UID, or for an entry written ahead of its create, if the
// object names the agent's field manager. gone is true once the object is
// gone (an object with finalizers stays a while); what it owns (a
// Deployment's ReplicaSets and Pods) the cluster's garbage collector
// removes in the background, as kubectl delete does.
func (a *applier) remove(ctx context.Context, o appliedObject) (gone bool, err error) {
	ri := a.resource(o.objectID)
	uid := o.UID
	if uid == "" {
		live, err := ri.Get(ctx, o.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return true, nil
		case err != nil:
			return false, fmt.Errorf("get %s: %w", o.objectID, err)
		case !managedBy(live, a.fieldManager):
			return true, nil // not the agent's: left alone
		}
		uid = string(live.GetUID())
	}
	u := types.UID(uid)
	bg := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, o.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u}, PropagationPolicy: &bg})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsConflict(err): // gone, or another object now
		return true, nil
	case err != nil:
		return false, fmt.Errorf("delete %s: %w", o.objectID, err)
	}
	live, err := ri.Get(ctx, o.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("get %s: %w", o.objectID, err)
	}
	return live.GetUID() != u, nil
}

func managedBy(u *unstructured.Unstructured, manager string) bool {
	return slices.ContainsFunc(u.GetManagedFields(), func(f metav1.ManagedFieldsEntry) bool { return f.Manager == manager })
}

// orphaned says whether the delete option leaves id in place.
func orphaned(opt *fleetv1.DeleteOption, id objectID) bool {
	if opt == nil {
		return false
	}
	switch opt.PropagationPolicy {
	case fleetv1.DeleteOrphan:
		return true
	case fleetv1.DeleteSelectivelyOrphan:
		return slices.ContainsFunc(opt.SelectivelyOrphan, func(ri fleetv1.ResourceIdentifier) bool {
			return ri.Group == id.Group && ri.Resource == id.Resource && ri.Name == id.Name && ri.Namespace == id.Namespace
		})
	}
	return false
}

// driftEvent records a corrected drift as a Kubernetes Event on the object,
// which the agent's events pipeline also ships to the hub.
func (a *applier) driftEvent(ctx context.Context, cluster, work string, obj *unstructured.Unstructured, now time.Time) error {
	ns := obj.GetNamespace()
	if ns == "" {
		ns = "default"
	}
	ts := now.UTC().Format(time.RFC3339)
	ev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Event",
		"metadata": map[string]any{"generateName": obj.GetName() + ".drift-", "namespace": ns},
		"involvedObject": map[string]any{
			"apiVersion": obj.GetAPIVersion(), "kind": obj.GetKind(), "name": obj.GetName(), "namespace": obj.GetNamespace(),
			"uid": string(obj.GetUID()), "resourceVersion": obj.GetResourceVersion(),
		},
		"reason":  ReasonDriftCorrected,
		"message": fmt.Sprintf("%s %s was changed on the cluster; work %s applied it again", obj.GetKind(), obj.GetName(), work),
		"type":    "Warning", "count": int64(1), "firstTimestamp": ts, "lastTimestamp": ts,
		"source":             map[string]any{"component": a.fieldManager, "host": cluster},
		"reportingComponent": "fleetpulse.io/" + a.fieldManager, "reportingInstance": cluster,
	}}
	_, err := a.dyn.Resource(eventsGVR).Namespace(ns).Create(ctx, ev, metav1.CreateOptions{})
	return err
}
