package events

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Refusal reasons of ingest requests, as label values.
const (
	refusedTooManyEvents = "too_many_events"
	refusedTooManyFields = "too_many_fields"
	refusedTooDeep       = "too_deep"
	refusedMalformed     = "malformed"
	refusedTooLarge      = "too_large"
	refusedTooFast       = "too_fast"
)

type metrics struct {
	received    *prometheus.CounterVec
	truncated   prometheus.Counter
	refused     *prometheus.CounterVec
	stored      prometheus.Gauge
	storedBytes prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		received: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_events_total",
			Help: "Kubernetes events received from agents, by cluster, reason, type and involved-object kind (reasons, types and kinds outside the known sets count as \"other\").",
		}, []string{"cluster", "reason", "type", "kind"}),
		truncated: f.NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_events_truncated_total",
			Help: "Kubernetes events kept with a field cut to its maximum length.",
		}),
		refused: f.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_events_requests_refused_total",
			Help: "Event ingest requests refused, by the limit or check they failed.",
		}, []string{"reason"}),
		stored: f.NewGauge(prometheus.GaugeOpts{
			Name: "fleetpulse_hub_events_stored",
			Help: "Kubernetes events kept in memory.",
		}),
		storedBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "fleetpulse_hub_events_stored_bytes",
			Help: "Approximate memory the kept Kubernetes events take.",
		}),
	}
	for _, r := range []string{refusedTooManyEvents, refusedTooManyFields, refusedTooDeep, refusedMalformed, refusedTooLarge, refusedTooFast} {
		m.refused.WithLabelValues(r)
	}
	return m
}
