package replication

import (
	"errors"
	"net/http"
	"testing"
)

// TestAnswerClass checks what each owner's answer means for the agent's
// write: refusals of the request itself reach the agent as they are, and
// everything else that is not a success is a failed write, retried.
func TestAnswerClass(t *testing.T) {
	for _, tc := range []struct {
		status int
		err    error
		want   class
	}{
		{http.StatusNoContent, nil, success},
		{http.StatusOK, nil, success},
		{http.StatusBadRequest, nil, refused},
		{http.StatusRequestEntityTooLarge, nil, refused},
		{http.StatusUnsupportedMediaType, nil, refused},
		{http.StatusTooManyRequests, nil, refused},
		{http.StatusUnauthorized, nil, failed},
		{http.StatusForbidden, nil, failed},
		{http.StatusMisdirectedRequest, nil, failed},
		{http.StatusServiceUnavailable, nil, failed},
		{http.StatusInternalServerError, nil, failed},
		{0, errors.New("connection refused"), failed},
	} {
		a := newAnswer("hub-1")
		a.status, a.err = tc.status, tc.err
		if got := a.class(); got != tc.want {
			t.Errorf("%d %v: %s, want %s", tc.status, tc.err, got, tc.want)
		}
	}
}
