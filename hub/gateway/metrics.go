package gateway

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "fleetpulse_hub_agent_requests_total",
			Help: "Requests on the agents' port by cluster (empty when not authenticated), handler (the route's path) and status code.",
		}, []string{"cluster", "handler", "code"}),
		// By handler only: per cluster it would cost thousands of series
		// per handler in a large fleet.
		duration: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetpulse_hub_agent_request_duration_seconds",
			Help:    "Time to answer requests on the agents' port (long polls included), by handler.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"handler"}),
	}
}

func (m *metrics) observe(cluster, handler string, code int, took time.Duration) {
	m.requests.WithLabelValues(cluster, handler, strconv.Itoa(code)).Inc()
	m.duration.WithLabelValues(handler).Observe(took.Seconds())
}

// forget deletes a cluster's label values.
func (m *metrics) forget(cluster string) {
	m.requests.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// code is the status answered; a handler that wrote nothing answered 200.
func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
