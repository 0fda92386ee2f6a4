package registration

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/lru"
)

// sourceLimiter limits registration calls per source address: each call
// costs the hub an apiserver read of a token, and guessing tokens must be
// slow. Sources live in an LRU of bounded size, so a flood of addresses
// cannot grow it without limit; an evicted source starts again with a full
// burst, which costs an attacker as many addresses as the bound to gain
// one burst.
type sourceLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex // makes get-or-add atomic; the LRU locks itself too
	sources *lru.Cache // source key → *sourceState
}

type sourceState struct {
	lim *rate.Limiter
	// limited is set at the first refusal and cleared by the next allowed
	// call, so that a source going over the limit is logged once per bout.
	limited bool
}

// newSourceLimiter returns nil when perSecond is 0: no limit.
func newSourceLimiter(perSecond float64, burst, maxSources int) *sourceLimiter {
	if perSecond <= 0 {
		return nil
	}
	return &sourceLimiter{limit: rate.Limit(perSecond), burst: burst, sources: lru.New(maxSources)}
}

// allow takes one call of source at now. When the source is over its limit
// it returns how long until it may call again, and whether this is the
// bout's first refusal.
func (l *sourceLimiter) allow(source string, now time.Time) (ok bool, wait time.Duration, first bool) {
	if l == nil {
		return true, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var st *sourceState
	if v, found := l.sources.Get(source); found {
		st = v.(*sourceState)
	} else {
		st = &sourceState{lim: rate.NewLimiter(l.limit, l.burst)}
		l.sources.Add(source, st)
	}
	r := st.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		first = !st.limited
		st.limited = true
		return false, d, first
	}
	st.limited = false
	return true, 0, false
}

// len is the number of sources tracked.
func (l *sourceLimiter) len() int {
	if l == nil {
		return 0
	}
	return l.sources.Len()
}

// sourceOf is the address a request comes from, as the hub's listener saw
// it (the agents' port terminates TLS itself: no proxy header is trusted).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limitKey is the key a source is limited by: an IPv4 address, or the /64
// of an IPv6 address, since one host commonly holds a whole /64.
func limitKey(source string) string {
	a, err := netip.ParseAddr(source)
	if err != nil {
		return source
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
