package workset

import (
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	fleetv1 "github.com/fleetpulse/fleetpulse/api/v1alpha1"
)

func mustGate(t *testing.T, g fleetv1.RolloutGate) *gate {
	t.Helper()
	if g.Query == "" {
		g.Query = "up"
	}
	pg, err := parseGate(g)
	if err != nil {
		t.Fatal(err)
	}
	return pg
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name             string
		success, failure string
		noData           string
		value            float64
		noSample         bool
		want             outcome
		why              string
	}{
		{name: "success holds", success: "value < 0.05", value: 0.01, want: outcomeSuccessful, why: "value < 0.05"},
		{name: "success alone, not holding, fails", success: "value < 0.05", value: 0.2, want: outcomeFailed, why: "not value < 0.05"},
		{name: "failure holds", failure: "value > 0", value: 3, want: outcomeFailed, why: "value > 0"},
		{name: "failure alone, not holding, passes", failure: "value > 0", value: 0, want: outcomeSuccessful, why: "not value > 0"},
		{name: "failure wins over success", success: "value >= 0", failure: "value >= 1", value: 2, want: outcomeFailed, why: "value >= 1"},
		{name: "between the two is inconclusive", success: "value < 0.01", failure: "value > 0.1", value: 0.05, want: outcomeInconclusive,
			why: "neither value < 0.01 nor value > 0.1"},
		{name: "NaN never passes", success: "value < 1", value: math.NaN(), want: outcomeFailed, why: "not value < 1"},
		{name: "no data pauses by default", success: "value < 1", noSample: true, want: outcomeInconclusive, why: "no data (noData: Pause)"},
		{name: "no data fails when asked", success: "value < 1", noData: NoDataFail, noSample: true, want: outcomeFailed, why: "no data (noData: Fail)"},
		{name: "no data passes only when asked", success: "value < 1", noData: NoDataPass, noSample: true, want: outcomeSuccessful, why: "no data (noData: Pass)"},
		{name: "result is value", success: "result == 1", value: 1, want: outcomeSuccessful, why: "result == 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := mustGate(t, fleetv1.RolloutGate{Name: "g", SuccessCondition: tc.success, FailureCondition: tc.failure, NoData: tc.noData})
			got, why := g.classify(tc.value, !tc.noSample)
			if got != tc.want || why != tc.why {
				t.Errorf("classify(%v) = %s %q, want %s %q", tc.value, got, why, tc.want, tc.why)
			}
		})
	}
}

func TestParseGateProblems(t *testing.T) {
	for _, tc := range []struct {
		gate fleetv1.RolloutGate
		want string
	}{
		{fleetv1.RolloutGate{Name: "g", Query: "up"}, "a successCondition or a failureCondition is required"},
		{fleetv1.RolloutGate{Name: "g", Query: "up", SuccessCondition: "value ~ 3"}, `condition "value ~ 3"`},
		{fleetv1.RolloutGate{Name: "g", Query: "up", SuccessCondition: "value < x"}, `"x" is not a number`},
		{fleetv1.RolloutGate{Name: "g", SuccessCondition: "value < 1"}, "a query is required"},
		{fleetv1.RolloutGate{Name: "g", Query: "up{{", SuccessCondition: "value < 1"}, "query template"},
		{fleetv1.RolloutGate{Name: "g", Query: "up", SuccessCondition: "value < 1", NoData: "Ignore"}, `noData "Ignore"`},
	} {
		_, err := parseGate(tc.gate)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseGate(%+v) = %v, want an error with %q", tc.gate, err, tc.want)
		}
	}
	g := mustGate(t, fleetv1.RolloutGate{Name: "g", SuccessCondition: "value < 1"})
	if g.interval != DefaultGateInterval || g.count != 1 || g.noData != NoDataPause {
		t.Errorf("defaults: interval %s, count %d, noData %s", g.interval, g.count, g.noData)
	}
}

func TestGateState(t *testing.T) {
	g := mustGate(t, fleetv1.RolloutGate{Name: "g", SuccessCondition: "value < 1", Count: 3, FailureLimit: 1, InconclusiveLimit: 2,
		Interval: metav1.Duration{Duration: time.Second}})
	for _, tc := range []struct {
		counts fleetv1.ClusterGateStatus
		want   gateState
	}{
		{fleetv1.ClusterGateStatus{Successful: 2}, gateRunning},
		{fleetv1.ClusterGateStatus{Successful: 3}, gatePassed},
		{fleetv1.ClusterGateStatus{Successful: 3, Failed: 1}, gatePassed},
		{fleetv1.ClusterGateStatus{Successful: 3, Failed: 2}, gateFailed},
		{fleetv1.ClusterGateStatus{Successful: 9, Inconclusive: 3}, gateInconclusive},
	} {
		if got := g.state(&tc.counts); got != tc.want {
			t.Errorf("state(%+v) = %d, want %d", tc.counts, got, tc.want)
		}
	}
}

func TestQueryTemplate(t *testing.T) {
	g := mustGate(t, fleetv1.RolloutGate{Name: "restarts", SuccessCondition: "value == 0",
		Query: `sum by (cluster) (increase(app_restarts_total{cluster=~"{{ .Clusters }}",version="v{{ .Revision }}"}[5m]))` +
			` # {{ len .ClusterNames }} of {{ .Namespace }}/{{ .Name }} stage {{ .Stage }} after {{ .PreviousRevision }} {{ .TemplateHash }}`})
	got, err := g.expand(queryVars{Clusters: clusterAlternation([]string{"eu-1", "us.2"}), ClusterNames: []string{"eu-1", "us.2"},
		Revision: 3, PreviousRevision: 2, TemplateHash: "abc", Stage: 1, Namespace: "apps", Name: "web"})
	if err != nil {
		t.Fatal(err)
	}
	want := `sum by (cluster) (increase(app_restarts_total{cluster=~"eu-1|us\.2",version="v3"}[5m])) # 2 of apps/web stage 1 after 2 abc`
	if got != want {
		t.Errorf("expand =\n%s\nwant\n%s", got, want)
	}
	bad := mustGate(t, fleetv1.RolloutGate{Name: "g", SuccessCondition: "value < 1", Query: "{{ .Nope }}"})
	if _, err := bad.expand(queryVars{}); err == nil {
		t.Error("a template naming an unknown field expanded")
	}
}
