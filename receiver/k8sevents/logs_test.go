package k8sevents

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
)

// TestLongMessagesAreCut: the informer keeps, and the record carries, at
// most the hub's 4 KiB of a message, cut between runes and marked.
func TestLongMessagesAreCut(t *testing.T) {
	for _, tc := range []struct{ name, msg, want string }{
		{"short", "Back-off restarting failed container", "Back-off restarting failed container"},
		{"exactly the limit", strings.Repeat("a", maxMessageBytes), strings.Repeat("a", maxMessageBytes)},
		{"1 MiB", strings.Repeat("é", 1<<19), strings.Repeat("é", (maxMessageBytes-len("…"))/2) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, err := slimEvent(&corev1.Event{Reason: "BackOff", Message: tc.msg})
			if err != nil {
				t.Fatal(err)
			}
			ev := obj.(*corev1.Event)
			body := toLogs(ev, time.Now()).ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Body().Str()
			if body != tc.want || len(body) > maxMessageBytes || !utf8.ValidString(body) {
				t.Errorf("body of %d bytes (%q…), want %d bytes, valid UTF-8", len(body), body[:min(len(body), 16)], len(tc.want))
			}
		})
	}
}
