package replication

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests       *prometheus.CounterVec
	duration       prometheus.Histogram
	quorumFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_replication_requests_total",
			Help: "Agents' writes sent on to their cluster's other owners, by result: success; refused (the owner refused the request itself, 4xx); failed (unreachable, 5xx, or it refused this replica).",
		}, []string{"result"}),
		duration: promauto.With(reg).NewHistogram(prometheus.HistogramOpts{
			Name:    "fleetpulse_hub_replication_request_duration_seconds",
			Help:    "Time for another owner to answer a replicated write.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		quorumFailures: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "fleetpulse_hub_replication_quorum_failures_total",
			Help: "Agents' writes answered 503 (to be sent again) because fewer than a quorum of their cluster's owners wrote them.",
		}),
	}
	for _, r := range []string{"success", "refused", "failed"} {
		m.requests.WithLabelValues(r)
	}
	return m
}

func (c class) String() string {
	switch c {
	case success:
		return "success"
	case refused:
		return "refused"
	}
	return "failed"
}
