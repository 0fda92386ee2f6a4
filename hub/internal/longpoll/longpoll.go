// Package longpoll serves an agent's list of objects (its works, its
// policies) as a long poll: the answer comes at once when the caller's
// version is stale, else when the list changes or the timeout ends (304).
// A Broadcaster wakes the waiters of a namespace when an informer sees a
// change there.
package longpoll

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	// DefaultTimeout is how long a poll waits when the caller names none.
	DefaultTimeout = 30 * time.Second
	// MaxTimeout bounds what a caller may ask for.
	MaxTimeout = 5 * time.Minute
)

// Broadcaster wakes the waiters of a namespace: each Watch gets the
// namespace's current channel, closed by the next Notify.
type Broadcaster struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
}

// NewBroadcaster returns a Broadcaster with no waiters.
func NewBroadcaster() *Broadcaster { return &Broadcaster{chans: map[string]chan struct{}{}} }

// Watch returns a channel closed at the namespace's next change.
func (b *Broadcaster) Watch(ns string) <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.chans[ns]
	if !ok {
		c = make(chan struct{})
		b.chans[ns] = c
	}
	return c
}

// Notify wakes the namespace's waiters.
func (b *Broadcaster) Notify(ns string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.chans[ns]; ok {
		close(c)
		delete(b.chans, ns)
	}
}

// Versioned is a list that names its state.
type Versioned interface{ Version() string }

// Poll is one long-poll endpoint.
type Poll[L Versioned] struct {
	Wake *Broadcaster
	// List reads the namespace's list.
	List func(ctx context.Context, namespace string) (L, error)
	// Stopped, closed when the hub stops, answers waiting polls with 503 so
	// that shutdown does not wait for their timeouts.
	Stopped <-chan struct{}
	// Waiting counts polls waiting for a change; may be nil.
	Waiting prometheus.Gauge
}

// Result says how a poll ended, for the caller's request metrics.
type Result string

const (
	OK        Result = "ok"        // the list was sent
	Unchanged Result = "unchanged" // 304 after the timeout
	Invalid   Result = "invalid"   // a bad parameter
	Failed    Result = "error"     // the list could not be read
	Gone      Result = "gone"      // the caller left or the hub stopped
)

// Serve answers one poll of the namespace's list: at once without a
// resourceVersion, with a stale one, or with timeout 0; else when the list
// changes or the timeout ends. The list's version is also its ETag. A list
// error is returned for the caller to log; the answer is 503.
func (p *Poll[L]) Serve(w http.ResponseWriter, r *http.Request, namespace string) (Result, error) {
	q := r.URL.Query()
	since := q.Get("resourceVersion")
	timeout := DefaultTimeout
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			http.Error(w, fmt.Sprintf("timeout %q: want a duration such as 30s", s), http.StatusBadRequest)
			return Invalid, nil
		}
		timeout = min(d, MaxTimeout)
	}
	ctx := r.Context()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	waited := false
	for {
		// Watch before listing, so that a change between the two wakes us.
		wake := p.Wake.Watch(namespace)
		list, err := p.List(ctx, namespace)
		if err != nil {
			if ctx.Err() != nil {
				return Gone, nil
			}
			w.Header().Set("Retry-After", "2")
			http.Error(w, "listing failed; retry", http.StatusServiceUnavailable)
			return Failed, err
		}
		v := list.Version()
		w.Header().Set("ETag", strconv.Quote(v))
		if since == "" || v != since || timeout == 0 {
			WriteJSON(w, http.StatusOK, list)
			return OK, nil
		}
		if !waited && p.Waiting != nil {
			waited = true
			p.Waiting.Inc()
			defer p.Waiting.Dec()
		}
		select {
		case <-wake:
		case <-timer.C:
			w.WriteHeader(http.StatusNotModified)
			return Unchanged, nil
		case <-ctx.Done():
			return Gone, nil
		case <-p.Stopped:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "the hub is stopping; poll again", http.StatusServiceUnavailable)
			return Gone, nil
		}
	}
}

// WriteJSON writes v as a JSON answer.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
