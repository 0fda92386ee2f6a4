package replication

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
)

// maxAnswerBytes bounds what is kept of an owner's answer body: an error
// message, or the empty body of a write.
const maxAnswerBytes = 4 << 10

// answer is one owner's answer to a write: this replica's own, recorded as
// its ingest handler wrote it, or a peer's over HTTP.
type answer struct {
	owner  string
	header http.Header
	status int
	body   bytes.Buffer
	err    error // the peer could not be asked, or did not answer
}

func newAnswer(owner string) *answer { return &answer{owner: owner, header: http.Header{}} }

func (a *answer) Header() http.Header { return a.header }

func (a *answer) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

func (a *answer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	if room := maxAnswerBytes - a.body.Len(); room > 0 {
		a.body.Write(b[:min(len(b), room)])
	}
	return len(b), nil
}

// class is what the answer means for the write.
type class int

const (
	// success: the owner wrote the request.
	success class = iota
	// refused: the owner refused the request for what it holds (400
	// undecodable or partly refused samples, 413 too large, 415, 429 over
	// the cluster's limits), as every owner would: the agent is told so.
	refused
	// failed: the owner could not be reached, failed (5xx), or refused
	// this replica rather than the request (401, 403, 421: not an owner by
	// its ring): the write may succeed when sent again.
	failed
)

func (a *answer) class() class {
	switch {
	case a.err != nil:
		return failed
	case a.status/100 == 2:
		return success
	case a.status == http.StatusBadRequest, a.status == http.StatusRequestEntityTooLarge,
		a.status == http.StatusUnsupportedMediaType, a.status == http.StatusTooManyRequests:
		return refused
	}
	return failed
}

// writeTo answers the agent with this answer.
func (a *answer) writeTo(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body.Bytes())
}

// Error makes a failed or refused answer the error of its owner's write.
func (a *answer) Error() string {
	if a.err != nil {
		return fmt.Sprintf("owner %s: %v", a.owner, a.err)
	}
	return fmt.Sprintf("owner %s answered %d: %s", a.owner, a.status, strings.TrimSpace(a.body.String()))
}
