// Package poll waits in tests for a condition that a real cluster reaches
// in its own time (an election, a gossip round), instead of sleeping for a
// guessed duration.
package poll

import (
	"testing"
	"time"
)

// Until calls f every 20 ms until it returns nil, and fails tb with what
// and f's last error if that has not happened within the given time. It
// must be called from the test's goroutine.
func Until(tb testing.TB, within time.Duration, what string, f func() error) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
