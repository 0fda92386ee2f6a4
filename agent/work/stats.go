package work

import "sync/atomic"

// Results counted by Stats, the values of the result attribute.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// Requests to the hub counted by Stats, the values of the request attribute.
const (
	RequestList   = "list"   // the long poll for the cluster's works
	RequestStatus = "status" // a work's status report
)

// Stats counts what the work agent does, for the agent's own telemetry.
// Counts are kept in atomics, so an Agent counts whether or not a Collector
// publishes them (the fleetpulse_work extension does).
type Stats struct {
	applies, lists, reports [2]atomic.Int64 // by result: ok, error
	drifts                  atomic.Int64
	works                   atomic.Int64
}

// NewStats returns zero counts.
func NewStats() *Stats { return &Stats{} }

func resultIndex(err error) int {
	if err != nil {
		return 1
	}
	return 0
}

var results = [2]string{ResultOK, ResultError}

// Results lists the values of the result attribute.
var Results = []string{ResultOK, ResultError}

// Applies returns how many manifest applies ended with result.
func (s *Stats) Applies(result string) int64 { return get(&s.applies, result) }

// HubRequests returns how many requests of a kind (RequestList,
// RequestStatus) ended with result.
func (s *Stats) HubRequests(request, result string) int64 {
	switch request {
	case RequestList:
		return get(&s.lists, result)
	case RequestStatus:
		return get(&s.reports, result)
	}
	return 0
}

// Drifts returns how many drifted objects were put back.
func (s *Stats) Drifts() int64 { return s.drifts.Load() }

// Works returns how many works the hub last listed for the cluster.
func (s *Stats) Works() int64 { return s.works.Load() }

func get(c *[2]atomic.Int64, result string) int64 {
	for i, r := range results {
		if r == result {
			return c[i].Load()
		}
	}
	return 0
}
