package k8sevents

import (
	"strings"
	"time"
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// observedTime is when the event occurrence was last seen, second precision.
func observedTime(ev *corev1.Event) time.Time {
	switch {
	case ev.Series != nil && !ev.Series.LastObservedTime.IsZero():
		return ev.Series.LastObservedTime.Time.Truncate(time.Second)
	case !ev.LastTimestamp.IsZero():
		return ev.LastTimestamp.Time.Truncate(time.Second)
	case !ev.EventTime.IsZero():
		return ev.EventTime.Time.Truncate(time.Second)
	default:
		return ev.CreationTimestamp.Time.Truncate(time.Second)
	}
}

// toLogs maps one event to one log record: the involved object on the
// resource, the event's own fields as attributes, the message as body.
func toLogs(ev *corev1.Event, observed time.Time) plog.Logs {
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	res := rl.Resource().Attributes()
	obj := ev.InvolvedObject
	putIf(res, "k8s.namespace.name", obj.Namespace)
	putIf(res, "k8s.object.kind", obj.Kind)
	putIf(res, "k8s.object.name", obj.Name)
	putIf(res, "k8s.object.uid", string(obj.UID))
	putIf(res, "k8s.object.api_version", obj.APIVersion)
	putIf(res, "k8s.object.fieldpath", obj.FieldPath)
	if ev.Source.Host != "" {
		res.PutStr("k8s.node.name", ev.Source.Host)
	} else if obj.Kind == "Node" {
		res.PutStr("k8s.node.name", obj.Name)
	}
	sl := rl.ScopeLogs().AppendEmpty()
	sl.Scope().SetName("github.com/fleetpulse/fleetpulse/receiver/k8sevents")
	lr := sl.LogRecords().AppendEmpty()
	lr.SetTimestamp(pcommon.NewTimestampFromTime(observed))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	lr.Body().SetStr(ev.Message)
	if ev.Type == corev1.EventTypeWarning {
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
	} else {
		lr.SetSeverityNumber(plog.SeverityNumberInfo)
	}
	lr.SetSeverityText(ev.Type)
	a := lr.Attributes()
	a.PutStr("event.name", "k8s.event")
	a.PutStr("k8s.event.name", ev.Name)
	a.PutStr("k8s.event.uid", string(ev.UID))
	putIf(a, "k8s.event.reason", ev.Reason)
	putIf(a, "k8s.event.type", ev.Type)
	putIf(a, "k8s.event.action", ev.Action)
	putIf(a, "k8s.event.reporting_controller", firstNonEmpty(ev.ReportingController, ev.Source.Component))
	count := ev.Count
	if ev.Series != nil {
		count = ev.Series.Count
	}
	if count > 0 {
		a.PutInt("k8s.event.count", int64(count))
	}
	if first := firstTime(ev.FirstTimestamp, ev.EventTime); !first.IsZero() {
		a.PutStr("k8s.event.start_time", first.UTC().Format(time.RFC3339))
	}
	return ld
}

func putIf(m pcommon.Map, k, v string) {
	if v = strings.TrimSpace(v); v != "" {
		m.PutStr(k, v)
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func firstTime(t metav1.Time, mt metav1.MicroTime) time.Time {
	if !t.IsZero() {
		return t.Time
	}
	return mt.Time
}

// maxMessageBytes is the longest message sent, as the hub keeps at most
// that much: cutting it here keeps longer ones out of the informer's cache,
// the sending queue and the network.
const maxMessageBytes = 4 << 10

// cutMessage cuts m to maxMessageBytes at a rune boundary, ending in "…".
func cutMessage(m string) string {
	if len(m) <= maxMessageBytes {
		return m
	}
	n := maxMessageBytes - len("…")
	for n > 0 && !utf8.RuneStart(m[n]) {
		n--
	}
	return m[:n] + "…"
}

// slimEvent keeps what toLogs and deduplication read, the message cut.
func slimEvent(obj any) (any, error) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: ev.Name, Namespace: ev.Namespace, UID: ev.UID,
			ResourceVersion: ev.ResourceVersion, CreationTimestamp: ev.CreationTimestamp,
		},
		InvolvedObject:      ev.InvolvedObject,
		Reason:              ev.Reason,
		Message:             cutMessage(ev.Message),
		Source:              ev.Source,
		FirstTimestamp:      ev.FirstTimestamp,
		LastTimestamp:       ev.LastTimestamp,
		Count:               ev.Count,
		Type:                ev.Type,
		EventTime:           ev.EventTime,
		Series:              ev.Series,
		Action:              ev.Action,
		ReportingController: ev.ReportingController,
	}, nil
}
