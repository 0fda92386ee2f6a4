package backoff

import (
	"context"
	"testing"
	"time"
)

// TestBackoffDoublesToMaxWithJitter: waits double from Min to Max within
// ±20 %, a longer hint wins, Reset starts again at Min.
func TestBackoffDoublesToMaxWithJitter(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: time.Second}
	within := func(got, want time.Duration) bool { return got >= want*8/10 && got <= want*12/10 }
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		if got := b.Next(0); !within(got, want*time.Millisecond) {
			t.Errorf("wait %d = %s, want %dms ± 20 %%", i, got, want)
		}
	}
	if got := b.Next(5 * time.Second); got != 5*time.Second {
		t.Errorf("with a 5s hint: %s, want the hint", got)
	}
	b.Reset()
	if got := b.Next(0); !within(got, 100*time.Millisecond) {
		t.Errorf("after Reset: %s, want 100ms ± 20 %%", got)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Errorf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Errorf("Sleep(1ms) = %v", err)
	}
}
