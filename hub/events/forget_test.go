package events

import (
	"strings"
	"testing"
	"time"
)

// TestForgetDropsEverythingOfACluster: after Forget, a deregistered
// cluster's events no longer show, its counters' label values are gone from
// /metrics and its totals from the recorder; other clusters keep theirs.
func TestForgetDropsEverythingOfACluster(t *testing.T) {
	t.Parallel()
	r := newRig(t, 100, 32<<20)
	ev := testEvent{reason: "BackOff", typ: "Warning", kind: "Pod", name: "web-1", msg: "x"}
	for range 3 {
		r.send("gone", agentLogs(time.Now(), ev, ev))
		r.send("kept", agentLogs(time.Now(), ev))
	}

	r.events.Forget("gone")
	r.rec.Forget("gone")

	if got := r.get("cluster=gone").Data; len(got) != 0 {
		t.Errorf("%d events of the forgotten cluster still served", len(got))
	}
	if got := r.get("").Data; len(got) != 3 || got[0].Cluster != "kept" {
		t.Errorf("events after Forget: %+v, want kept's 3", got)
	}
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if strings.Contains(m.String(), `value:"gone"`) {
				t.Errorf("%s still has %s", mf.GetName(), m)
			}
		}
	}
	if _, ok := r.rec.clusters["gone"]; ok {
		t.Error("recorder keeps the forgotten cluster's totals")
	}
	if _, ok := r.rec.clusters["kept"]; !ok {
		t.Error("recorder lost the other cluster's totals")
	}
	if got := r.get("cluster=kept").Data; len(got) != 3 {
		t.Errorf("kept has %d events, want 3", len(got))
	}

	// Space freed by Forget is reused, oldest first, as before.
	for range 100 {
		r.send("kept", agentLogs(time.Now(), ev))
	}
	if got := r.get("limit=1000").Data; len(got) != 100 {
		t.Errorf("%d events kept at capacity 100", len(got))
	}
}
