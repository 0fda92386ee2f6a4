package work

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/jsonpath"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

// Condition reasons.
const (
	ReasonApplied        = "Applied"
	ReasonApplyFailed    = "ApplyFailed"
	ReasonApplyConflict  = "ApplyConflict"
	ReasonDriftCorrected = "DriftCorrected"
	ReasonReadOnly       = "ReadOnly"
	ReasonCreateOnly     = "CreateOnly"
	ReasonNotFound       = "NotFound"
	ReasonAvailable      = "Available"
	ReasonNotAvailable   = "NotAvailable"
	ReasonNotApplied     = "NotApplied"
	ReasonAsExpected     = "AsExpected"
	ReasonUnavailable    = "Unavailable"
	// Progressing reasons.
	ReasonApplying            = "Applying"
	ReasonWaitingForAvailable = "WaitingForAvailable"
	ReasonCompleted           = "Completed"
)

// wellKnown are the status fields WellKnownStatus reports, by group/kind.
var wellKnown = map[string][]string{
	"apps/Deployment":  {"readyReplicas", "replicas", "availableReplicas", "updatedReplicas"},
	"apps/StatefulSet": {"readyReplicas", "replicas", "availableReplicas", "currentReplicas", "updatedReplicas"},
	"apps/DaemonSet":   {"numberReady", "desiredNumberScheduled", "numberAvailable", "currentNumberScheduled", "updatedNumberScheduled"},
	"batch/Job":        {"active", "succeeded", "failed", "ready"},
}

// feedback evaluates rules over obj. Fields that are absent are left out
// (a Deployment with no ready replica has no readyReplicas).
func feedback(obj *unstructured.Unstructured, rules []fleetv1.FeedbackRule) ([]fleetv1.FeedbackValue, error) {
	var out []fleetv1.FeedbackValue
	var errs []string
	for _, rule := range rules {
		switch rule.Type {
		case fleetv1.FeedbackWellKnownStatus:
			gk := obj.GroupVersionKind().GroupKind()
			for _, f := range wellKnown[gk.Group+"/"+gk.Kind] {
				v, found, _ := unstructured.NestedFieldNoCopy(obj.Object, "status", f)
				if !found {
					continue
				}
				if raw, err := json.Marshal(v); err == nil {
					out = append(out, fleetv1.FeedbackValue{Name: f, Value: runtime.RawExtension{Raw: raw}})
				}
			}
		case fleetv1.FeedbackJSONPaths:
			for _, p := range rule.JSONPaths {
				raw, found, err := evalJSONPath(obj, p.Path)
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s (%s): %v", p.Name, p.Path, err))
					continue
				}
				if found {
					out = append(out, fleetv1.FeedbackValue{Name: p.Name, Value: runtime.RawExtension{Raw: raw}})
				}
			}
		}
	}
	if len(errs) > 0 {
		return out, fmt.Errorf("status feedback: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// evalJSONPath evaluates a kubectl-style JSONPath (".status.readyReplicas",
// braces optional) and returns its value as JSON: one value as itself,
// several as an array.
func evalJSONPath(obj *unstructured.Unstructured, path string) ([]byte, bool, error) {
	expr := strings.TrimSpace(path)
	if !strings.HasPrefix(expr, "{") {
		expr = "{" + expr + "}"
	}
	jp := jsonpath.New("feedback").AllowMissingKeys(true)
	if err := jp.Parse(expr); err != nil {
		return nil, false, err
	}
	results, err := jp.FindResults(obj.Object)
	if err != nil {
		return nil, false, err
	}
	var values []any
	for _, rs := range results {
		for _, r := range rs {
			if r.IsValid() && r.CanInterface() {
				values = append(values, r.Interface())
			}
		}
	}
	switch len(values) {
	case 0:
		return nil, false, nil
	case 1:
		raw, err := json.Marshal(values[0])
		return raw, err == nil, err
	}
	raw, err := json.Marshal(values)
	return raw, err == nil, err
}

// available says whether obj is available: a Deployment when its
// controller has seen its spec and as many replicas are available as it
// wants; any other object when it exists.
func available(obj *unstructured.Unstructured) (bool, string) {
	gk := obj.GroupVersionKind().GroupKind()
	if gk.Group == "apps" && gk.Kind == "Deployment" {
		want, found, _ := unstructured.NestedInt64(obj.Object, "spec", "replicas")
		if !found {
			want = 1
		}
		have, _, _ := unstructured.NestedInt64(obj.Object, "status", "availableReplicas")
		seen, _, _ := unstructured.NestedInt64(obj.Object, "status", "observedGeneration")
		if seen < obj.GetGeneration() {
			return false, "the deployment controller has not seen the latest spec yet"
		}
		if have < want {
			return false, fmt.Sprintf("%d of %d replicas available", have, want)
		}
		return true, fmt.Sprintf("%d of %d replicas available", have, want)
	}
	return true, "exists"
}

// setCondition sets a condition, keeping its transition time when its
// status does not change; times keep whole seconds, as on the wire.
func setCondition(conds *[]metav1.Condition, typ string, status metav1.ConditionStatus, reason, msg string, generation int64, now time.Time) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: truncate(msg, 1024), ObservedGeneration: generation,
		LastTransitionTime: metav1.NewTime(now.Truncate(time.Second)),
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
