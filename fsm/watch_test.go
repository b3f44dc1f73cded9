package fsm

import (
	"bytes"
	"io"
	"testing"
)

func signalled(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// A watcher is signalled after every change to its session, a delete and
// a restore included, never for other sessions, and signals coalesce so
// the FSM never waits for a reader.
func TestWatchSignalsChangesToItsSessionOnly(t *testing.T) {
	f := New(DefaultLimits)
	ch, cancel := f.Watch("s")
	if f.Watchers() != 1 {
		t.Fatalf("Watchers = %d", f.Watchers())
	}
	applyLog(t, f, 1, appendCmd("other", msg("a", "user", "x")))
	if signalled(ch) {
		t.Fatal("signalled for another session")
	}
	applyLog(t, f, 2, appendCmd("s", msg("a", "user", "x")))
	applyLog(t, f, 3, mergeCmd("s", "k", "1")) // coalesces with the first
	if !signalled(ch) || signalled(ch) {
		t.Fatal("want exactly one pending signal after two changes")
	}
	applyLog(t, f, 4, ifVersion(mergeCmd("s", "k", "2"), 1)) // fails: no change
	if signalled(ch) {
		t.Fatal("signalled for a command that changed nothing")
	}
	applyLog(t, f, 5, deleteCmd("s"))
	if !signalled(ch) {
		t.Fatal("not signalled for a delete")
	}
	snap := snapshotBytes(t, f)
	if err := f.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatal(err)
	}
	if !signalled(ch) {
		t.Fatal("not signalled for a restore")
	}
	cancel()
	cancel() // twice is harmless
	applyLog(t, f, 6, appendCmd("s", msg("b", "user", "y")))
	if signalled(ch) || f.Watchers() != 0 {
		t.Fatalf("signalled after cancel, or still counted (%d)", f.Watchers())
	}
}
