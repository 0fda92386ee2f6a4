package registration

import (
	"fmt"
	"testing"
	"time"
)

// TestSourceLimiter: a source gets its burst, then the rate; a refusal
// says how long to wait, and only a bout's first refusal is flagged for
// the log; sources are limited apart.
func TestSourceLimiter(t *testing.T) {
	l := newSourceLimiter(1, 3, 100)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 3 {
		if ok, _, _ := take(l, "10.0.0.1", t0); !ok {
			t.Fatalf("call %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait, first := take(l, "10.0.0.1", t0)
	if ok || !first || wait <= 0 || wait > time.Second {
		t.Fatalf("4th call at once: ok %v, wait %s, first %v; want refused, first of the bout, wait ≤ 1s", ok, wait, first)
	}
	if ok, _, first := take(l, "10.0.0.1", t0.Add(100*time.Millisecond)); ok || first {
		t.Fatalf("5th call: ok %v first %v, want refused, not the bout's first", ok, first)
	}
	if ok, _, _ := take(l, "10.0.0.2", t0); !ok {
		t.Fatal("another source is refused for the first's calls")
	}
	if ok, _, _ := take(l, "10.0.0.1", t0.Add(1100*time.Millisecond)); !ok {
		t.Fatal("a call after the rate's interval is refused")
	}
	if _, _, first := take(l, "10.0.0.1", t0.Add(1100*time.Millisecond)); !first {
		t.Fatal("a new bout over the limit is not flagged first")
	}
	if newSourceLimiter(0, 20, 100) != nil {
		t.Error("rate 0 builds a limiter, want none (no limit)")
	}
	var none *sourceLimiter
	if ok, _, _ := take(none, "10.0.0.1", t0); !ok {
		t.Error("no limiter refuses a call")
	}
}

// TestSourceLimiterIsBounded: a flood of sources cannot grow the map past
// its bound; the least recently seen are forgotten.
func TestSourceLimiterIsBounded(t *testing.T) {
	l := newSourceLimiter(1, 1, 50)
	t0 := time.Unix(1_700_000_000, 0)
	for i := range 10_000 {
		take(l, fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), t0)
	}
	if n := l.len(); n != 50 {
		t.Fatalf("%d sources tracked after 10,000, want the bound of 50", n)
	}
	// The newest are kept: the last source is still limited.
	if ok, _, _ := take(l, "10.0.39.15", t0); ok {
		t.Error("the most recent source forgot its limit")
	}
	if ok, _, _ := take(l, "10.0.0.0", t0); !ok {
		t.Error("the oldest source is still tracked past the bound")
	}
}

func TestLimitKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.7":            "192.0.2.7",
		"::ffff:192.0.2.7":     "192.0.2.7",
		"2001:db8:1:2:aaaa::1": "2001:db8:1:2::/64",
		"2001:db8:1:2:bbbb::9": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":      "2001:db8:1:3::/64",
		"not-an-address":       "not-an-address",
	} {
		if got := limitKey(in); got != want {
			t.Errorf("limitKey(%q) = %q, want %q", in, got, want)
		}
	}
}

// take is one refused call: checked, then charged.
func take(l *sourceLimiter, source string, now time.Time) (bool, time.Duration, bool) {
	ok, wait, first := l.check(source, now)
	if ok {
		l.fail(source, now)
	}
	return ok, wait, first
}
