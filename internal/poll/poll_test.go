package poll

import (
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// until runs Until on its own goroutine and returns what it failed with.
func until(within time.Duration, f func() error) string {
	r := &fatalRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Until(r, within, "the condition", f)
	}()
	<-done
	return r.msg
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	msg := until(time.Minute, func() error {
		if calls++; calls < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if msg != "" || calls != 3 {
		t.Fatalf("failed with %q after %d calls, want success on the third", msg, calls)
	}
}

func TestUntilFailsWithTheLastErrorAfterTheDeadline(t *testing.T) {
	msg := until(50*time.Millisecond, func() error { return errors.New("still 2 of 3") })
	if want := "the condition: not within 50ms: still 2 of 3"; msg != want {
		t.Fatalf("failed with %q, want %q", msg, want)
	}
}
