package work

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Labels the agent sets on the managed cluster.
const (
	// LabelRecord marks the agent's record ConfigMaps.
	LabelRecord = "work.fleetpulse.io/record"
	// LabelApplied marks the objects the agent applied, so that it watches
	// only those.
	LabelApplied = "work.fleetpulse.io/applied"
	recordKey    = "record.json"
)

var (
	configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	namespaces = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	eventsGVR  = schema.GroupVersionResource{Version: "v1", Resource: "events"}
)

// objectID names one object on the managed cluster.
type objectID struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Resource  string `json:"resource"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o objectID) gvr() schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: o.Group, Version: o.Version, Resource: o.Resource}
}

// same compares identities across versions of a kind (apps/v1 and a later
// apps/v2 name one object).
func (o objectID) same(p objectID) bool {
	return o.Group == p.Group && o.Resource == p.Resource && o.Namespace == p.Namespace && o.Name == p.Name
}

func (o objectID) String() string {
	s := o.Resource
	if o.Group != "" {
		s += "." + o.Group
	}
	if o.Namespace != "" {
		return s + " " + o.Namespace + "/" + o.Name
	}
	return s + " " + o.Name
}

// appliedObject is an object a work applied: its UID once known (an entry
// without one is written ahead of a create; it counts as the agent's only
// if the object names the agent's field manager), and the hash of the
// manifest last applied to it, to tell drift from an edit of the work.
type appliedObject struct {
	objectID
	UID  string `json:"uid,omitempty"`
	Hash string `json:"hash,omitempty"`
}

// record is what the agent applied for one work, kept in a ConfigMap on
// the managed cluster so that a restart neither forgets nor re-deletes.
type record struct {
	Work         string                     `json:"work"`
	WorkUID      string                     `json:"workUID"`
	DeleteOption *fleetv1.DeleteOption      `json:"deleteOption,omitempty"`
	Objects      []appliedObject            `json:"objects"`
	cm           *unstructured.Unstructured // as last read or written
}

func (r *record) find(id objectID) int {
	return slices.IndexFunc(r.Objects, func(o appliedObject) bool { return o.same(id) })
}

// records reads and writes the record ConfigMaps.
type records struct {
	dyn       dynamic.Interface
	namespace string
}

// ensureNamespace creates the records' namespace.
func (s records) ensureNamespace(ctx context.Context) error {
	ns := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": s.namespace},
	}}
	_, err := s.dyn.Resource(namespaces).Create(ctx, ns, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s for the work records: %w", s.namespace, err)
	}
	return nil
}

// load reads every record.
func (s records) load(ctx context.Context) (map[string]*record, error) {
	list, err := s.dyn.Resource(configMaps).Namespace(s.namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelRecord + "=true"})
	if err != nil {
		return nil, fmt.Errorf("list work records in %s: %w", s.namespace, err)
	}
	out := make(map[string]*record, len(list.Items))
	for i := range list.Items {
		cm := &list.Items[i]
		raw, _, _ := unstructured.NestedString(cm.Object, "data", recordKey)
		r := &record{}
		if err := json.Unmarshal([]byte(raw), r); err != nil || r.Work == "" {
			return nil, fmt.Errorf("work record %s/%s is unreadable (%v): fix or delete it", s.namespace, cm.GetName(), err)
		}
		r.cm = cm
		out[r.Work] = r
	}
	return out, nil
}

// save writes r, creating its ConfigMap if needed. The agent is the
// records' only writer; a conflict means someone touched one by hand, and
// the agent's version wins.
func (s records) save(ctx context.Context, r *record) error {
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	rc := s.dyn.Resource(configMaps).Namespace(s.namespace)
	for attempt := 0; ; attempt++ {
		if r.cm == nil {
			cm := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": r.Work, "namespace": s.namespace, "labels": map[string]any{LabelRecord: "true"}},
				"data":     map[string]any{recordKey: string(raw)},
			}}
			created, err := rc.Create(ctx, cm, metav1.CreateOptions{})
			if err == nil {
				r.cm = created
				return nil
			}
			if !apierrors.IsAlreadyExists(err) || attempt > 2 {
				return fmt.Errorf("create work record %s: %w", r.Work, err)
			}
			if r.cm, err = rc.Get(ctx, r.Work, metav1.GetOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("read work record %s: %w", r.Work, err)
			}
			continue
		}
		cm := r.cm.DeepCopy()
		if err := unstructured.SetNestedField(cm.Object, string(raw), "data", recordKey); err != nil {
			return err
		}
		updated, err := rc.Update(ctx, cm, metav1.UpdateOptions{})
		if err == nil {
			r.cm = updated
			return nil
		}
		if !(apierrors.IsConflict(err) || apierrors.IsNotFound(err)) || attempt > 2 {
			return fmt.Errorf("update work record %s: %w", r.Work, err)
		}
		cur, gerr := rc.Get(ctx, r.Work, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(gerr):
			r.cm = nil
		case gerr != nil:
			return fmt.Errorf("read work record %s: %w", r.Work, gerr)
		default:
			r.cm = cur
		}
	}
}

// remove deletes r's ConfigMap.
func (s records) remove(ctx context.Context, r *record) error {
	err := s.dyn.Resource(configMaps).Namespace(s.namespace).Delete(ctx, r.Work, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete work record %s: %w", r.Work, err)
	}
	return nil
}
