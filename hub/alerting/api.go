package alerting

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// apiAlert is an alert as Prometheus's GET /api/v1/alerts writes it.
type apiAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    *time.Time        `json:"activeAt,omitempty"`
	Value       string            `json:"value"`
}

// FleetAlerts returns the fleet's alerts as Prometheus's GET
// /api/v1/alerts lists them (query.AlertsSource): this replica's and its
// peers', so that whichever replica a load balancer picks lists them all.
// A peer that does not answer leaves its alerts out with a warning naming
// it, as the query API answers from the stores that answer.
func (a *Alerting) FleetAlerts(ctx context.Context) (data any, warnings []string) {
	alerts := a.Local()
	if a.peers != nil {
		remote, err := a.peers(ctx)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("alerts of other hub replicas left out: %v", err))
		} else {
			alerts = mergeAlerts(alerts, remote)
		}
	}
	out := make([]apiAlert, 0, len(alerts))
	for _, al := range alerts {
		state := "pending"
		if al.Firing {
			state = "firing"
		}
		activeAt := al.ActiveAt.UTC()
		out = append(out, apiAlert{Labels: al.Labels, Annotations: al.Annotations, State: state, ActiveAt: &activeAt,
			Value: strconv.FormatFloat(al.Value, 'e', -1, 64)})
	}
	return map[string]any{"alerts": out}, warnings
}
