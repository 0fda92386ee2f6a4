package alerting

import (
	"encoding/json"
	"fmt"
	"net/http"
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

type alertsResponse struct {
	Status   string   `json:"status"`
	Data     any      `json:"data"`
	Warnings []string `json:"warnings,omitempty"`
}

// FleetAlertsHandler answers GET /api/v1/alerts, as Prometheus does, with
// the fleet's alerts: this replica's and its peers', so that whichever
// replica a load balancer picks lists them all. A peer that does not
// answer leaves its alerts out with a warning naming it, as the query
// API answers from the stores that answer.
func (a *Alerting) FleetAlertsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		alerts := a.Local()
		var warnings []string
		if a.peers != nil {
			remote, err := a.peers(r.Context())
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
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(alertsResponse{Status: "success", Data: map[string]any{"alerts": out}, Warnings: warnings})
	})
}
