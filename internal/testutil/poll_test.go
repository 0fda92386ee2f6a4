package testutil

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is a testing.TB that records failures instead of ending the test.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errs   []string
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs, r.failed = append(r.errs, fmt.Sprintf(format, args...)), true
}
func (r *recorder) FailNow() { runtime.Goexit() }

func TestEventuallyReportsTheLastError(t *testing.T) {
	n := 0
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Eventually(r, 300*time.Millisecond, func() error { n++; return fmt.Errorf("attempt %d: not yet", n) })
	}()
	<-done
	if !r.failed {
		t.Fatal("Eventually passed a check that never held")
	}
	got := strings.Join(r.errs, "\n")
	if !strings.Contains(got, "not yet") || !strings.Contains(got, fmt.Sprintf("attempt %d", n)) {
		t.Errorf("failure says %q, want the last attempt's error (attempt %d)", got, n)
	}
}

func TestEventuallyReturnsOnceTheCheckHolds(t *testing.T) {
	start := time.Now()
	Eventually(t, 5*time.Second, func() error {
		if time.Since(start) < 150*time.Millisecond {
			return errors.New("not yet")
		}
		return nil
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %s, want soon after the check held", d)
	}
}

func TestConsistentlyFailsAtTheFirstError(t *testing.T) {
	r := &recorder{TB: t}
	done := make(chan struct{})
	calls := 0
	go func() {
		defer close(done)
		Consistently(r, 5*time.Second, func() error {
			calls++
			if calls == 3 {
				return errors.New("broke")
			}
			return nil
		})
	}()
	<-done
	if !r.failed || calls != 3 || !strings.Contains(strings.Join(r.errs, "\n"), "broke") {
		t.Errorf("failed %v after %d calls with %q; want a failure naming the third call's error", r.failed, calls, r.errs)
	}
}
