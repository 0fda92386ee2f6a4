package limits

import (
	"fmt"
	"net/http"
	"strconv"
)

// The limits, as a refusal and the limited_total counter name them.
const (
	LabelNameLength   = "label_name_length"
	LabelValueLength  = "label_value_length"
	LabelsPerSeries   = "labels_per_series"
	SeriesPerRequest  = "series_per_request"
	SamplesPerRequest = "samples_per_request"
	DecompressedBytes = "decompressed_bytes"
	HeadSeries        = "head_series"
	RequestRate       = "request_rate"
	// RequestBytes is the hub's bound on a request's compressed body
	// (--agents.max-request-bytes), the same for every cluster; its
	// refusals are counted with the others.
	RequestBytes = "request_bytes"
)

// statusOf is the answer to a request over each limit: 400 for a series
// that can never be stored as sent, 413 for a request too large (smaller
// ones would do), 429 for a cluster over its rate or its series, which a
// retry later may pass (the agent retries 429, after Retry-After).
var statusOf = map[string]int{
	LabelNameLength:   http.StatusBadRequest,
	LabelValueLength:  http.StatusBadRequest,
	LabelsPerSeries:   http.StatusBadRequest,
	SeriesPerRequest:  http.StatusRequestEntityTooLarge,
	SamplesPerRequest: http.StatusRequestEntityTooLarge,
	DecompressedBytes: http.StatusRequestEntityTooLarge,
	RequestBytes:      http.StatusRequestEntityTooLarge,
	HeadSeries:        http.StatusTooManyRequests,
	RequestRate:       http.StatusTooManyRequests,
}

// Refusal is a request refused for a limit: nothing of it was stored.
type Refusal struct {
	Cluster string
	// Limit names the limit (LabelValueLength, ...) and Value is its value.
	Limit string
	Value float64
	// What says what was over it.
	What string
	// Status is the HTTP status to answer with.
	Status int
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("%s, over the %s limit of %s of cluster %q", r.What, r.Limit, strconv.FormatFloat(r.Value, 'f', -1, 64), r.Cluster)
}
