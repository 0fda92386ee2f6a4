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

// sourceLimiter limits refused registration calls per source address:
// guessing tokens must be slow. Sources live in an LRU of bounded size, so a flood of addresses
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

// check tells whether source may call at now, without taking anything:
// only refused calls cost (fail), so that agents joining in numbers from
// one address (a NAT, a benchmark) are never slowed, while guessing tokens
// is. Over the limit it returns how long until the source may call again,
// and whether this is the bout's first refusal.
func (l *sourceLimiter) check(source string, now time.Time) (ok bool, wait time.Duration, first bool) {
	if l == nil {
		return true, 0, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.state(source)
	if tokens := st.lim.TokensAt(now); tokens < 1 {
		first = !st.limited
		st.limited = true
		return false, time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)), first
	}
	st.limited = false
	return true, 0, false
}

// fail charges source one refused call at now.
func (l *sourceLimiter) fail(source string, now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state(source).lim.AllowN(now, 1)
}

func (l *sourceLimiter) state(source string) *sourceState {
	if v, found := l.sources.Get(source); found {
		return v.(*sourceState)
	}
	st := &sourceState{lim: rate.NewLimiter(l.limit, l.burst)}
	l.sources.Add(source, st)
	return st
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
