// Package backoff spaces the agent's retries of calls to the hub and to its
// cluster.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles from Min to Max, with ±20 % jitter so that a fleet of
// agents does not call a recovering hub in step. The zero value of its
// state starts at Min.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next wait: the doubled (jittered) delay, or hint (a
// Retry-After) when that is longer.
func (b *Backoff) Next(hint time.Duration) time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	d := b.cur
	if j := int64(d) * 2 / 5; j > 0 {
		d += time.Duration(rand.Int64N(j) - j/2)
	}
	return max(d, hint)
}

// Reset starts the next wait at Min again.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends, whose error it then returns.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
