package chartsource

import "fmt"

// Reasons of an Error: what was wrong, as a status condition's reason.
const (
	// ReasonInvalid: the source is not usable as given (no chart name, a
	// bad URL, values that are not an object).
	ReasonInvalid = "ChartSourceInvalid"
	// ReasonFetchFailed: the repository or registry could not be read, or
	// refused the credentials.
	ReasonFetchFailed = "ChartFetchFailed"
	// ReasonNotFound: the repository has no such chart or version.
	ReasonNotFound = "ChartNotFound"
	// ReasonTooLarge: the index, the archive or the rendered objects are
	// past the limits.
	ReasonTooLarge = "ChartTooLarge"
	// ReasonLoadFailed: the archive is not a valid chart.
	ReasonLoadFailed = "ChartLoadFailed"
	// ReasonRenderFailed: a template failed, or rendered something that is
	// not a Kubernetes object.
	ReasonRenderFailed = "ChartRenderFailed"
	// ReasonRenderTimeout: the templates took longer than the limit.
	ReasonRenderTimeout = "ChartRenderTimeout"
)

// Error is a failed fetch or render, with the reason for status.
type Error struct {
	Reason string
	Err    error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

func fail(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Err: fmt.Errorf(format, args...)}
}
