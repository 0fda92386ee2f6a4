package testutil

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Tick is how often Eventually and Consistently check.
const Tick = 50 * time.Millisecond

// Eventually checks until check returns nil, and fails the test when within
// has passed, reporting check's last error so that a timeout says what was
// still wrong. check runs on another goroutine: it returns errors rather than
// calling t.Fatal.
func Eventually(t testing.TB, within time.Duration, check func() error, msgAndArgs ...any) {
	t.Helper()
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		assert.NoError(c, check())
	}, within, Tick, msgAndArgs...)
}

// Consistently checks for the whole period and fails the test at check's
// first error.
func Consistently(t testing.TB, period time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(period)
	for {
		require.NoError(t, check(), "within %s", period)
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(Tick)
	}
}
