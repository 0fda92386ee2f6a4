package alerting

import (
	"slices"
	"testing"
	"time"
)

// TestMergeAlertsKeepsEachAlertOnce: two replicas' copies of an alert (a
// replicated cluster, one changing owner) make one, firing over pending,
// else the earliest; distinct alerts all stay, in a stable order.
func TestMergeAlertsKeepsEachAlertOnce(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := func(name, cluster string, firing bool, at time.Time) Alert {
		return Alert{Name: name, Labels: map[string]string{"alertname": name, "cluster": cluster}, Firing: firing, ActiveAt: at}
	}
	here := []Alert{a("Down", "c-1", false, t0), a("Down", "c-2", true, t0.Add(time.Minute)), a("Full", "c-1", false, t0.Add(time.Minute))}
	there := []Alert{a("Down", "c-1", true, t0.Add(time.Minute)), a("Down", "c-2", true, t0), a("Full", "c-1", false, t0), a("Down", "c-3", false, t0)}
	got := mergeAlerts(here, there)
	want := []Alert{a("Down", "c-1", true, t0.Add(time.Minute)), a("Down", "c-2", true, t0), a("Down", "c-3", false, t0), a("Full", "c-1", false, t0)}
	if !slices.EqualFunc(got, want, func(x, y Alert) bool {
		return x.Name == y.Name && x.Labels["cluster"] == y.Labels["cluster"] && x.Firing == y.Firing && x.ActiveAt.Equal(y.ActiveAt)
	}) {
		t.Errorf("merged %+v, want %+v", got, want)
	}
}
