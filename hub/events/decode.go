package events

import (
	"unicode/utf8"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
)

// Ellipsis ends every field the hub cut to its maximum.
const Ellipsis = "…"

// Decode reads every log record of ld as an event of cluster, each field cut
// to its maximum (see Event.Truncated).
func Decode(cluster string, ld plog.Logs) []Event {
	var evs []Event
	for i := 0; i < ld.ResourceLogs().Len(); i++ {
		rl := ld.ResourceLogs().At(i)
		res := rl.Resource().Attributes()
		for j := 0; j < rl.ScopeLogs().Len(); j++ {
			lrs := rl.ScopeLogs().At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				evs = append(evs, decodeRecord(cluster, res, lrs.At(k)))
			}
		}
	}
	return evs
}

func decodeRecord(cluster string, res pcommon.Map, lr plog.LogRecord) Event {
	attrs := lr.Attributes()
	var cut clipper
	ev := Event{
		Cluster:   cluster,
		Time:      lr.Timestamp().AsTime(),
		Type:      cut.clip(str(attrs, "k8s.event.type"), maxShortBytes),
		Reason:    cut.clip(str(attrs, "k8s.event.reason"), maxShortBytes),
		Kind:      cut.clip(str(res, "k8s.object.kind"), maxShortBytes),
		Namespace: cut.clip(str(res, "k8s.namespace.name"), MaxNamespaceBytes),
		Name:      cut.clip(str(res, "k8s.object.name"), MaxNameBytes),
		Message:   cut.clip(body(lr.Body()), MaxMessageBytes),
	}
	ev.Truncated = bool(cut)
	if v, ok := attrs.Get("k8s.event.count"); ok && v.Type() == pcommon.ValueTypeInt {
		ev.Count = v.Int()
	}
	if lr.Timestamp() == 0 {
		ev.Time = lr.ObservedTimestamp().AsTime()
	}
	return ev
}

// clipper remembers whether any field was cut.
type clipper bool

// clip cuts s to at most limit bytes at a rune boundary, ending in Ellipsis.
// The cut is a new string, so a kept event does not pin the request's
// (possibly megabytes long) original.
func (c *clipper) clip(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	*c = true
	n := limit - len(Ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + Ellipsis
}

// str reads a string attribute; other value types (maps, arrays, which
// AsString would render whole) are not what the agent sends and read as "".
func str(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok && v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return ""
}

// body reads the message: a string as is, anything else rendered (already
// bounded by the request's size and the nesting check).
func body(v pcommon.Value) string {
	if v.Type() == pcommon.ValueTypeStr {
		return v.Str()
	}
	return v.AsString()
}
