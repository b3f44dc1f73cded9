package fsm

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// The schedule of the concurrency test: entry i writes to session i%n; two in
// three entries append message "m<i>", the others put field "f<i%5>". From it
// the exact state at any applied index is known.
const concSessions = 97

func concCommand(i uint64) Command {
	id := "s" + strconv.FormatUint(i%concSessions, 10)
	if i%3 != 0 {
		return Command{Op: OpAppendMessages, Session: id, At: int64(i),
			Messages: []NewMessage{{ID: "m" + strconv.FormatUint(i, 10), Role: "user", Content: "hello"}}}
	}
	return Command{Op: OpPutField, Session: id, At: int64(i), Field: "f" + strconv.FormatUint(i%5, 10),
		Value: []byte(strconv.FormatUint(i, 10))}
}

// concExpect returns, for a snapshot at applied index n, the message count
// and version of every session.
func concExpect(n uint64) (msgs map[string]int, version map[string]uint64) {
	msgs, version = map[string]int{}, map[string]uint64{}
	for i := uint64(1); i <= n; i++ {
		c := concCommand(i)
		if c.Op == OpAppendMessages {
			msgs[c.Session]++
		}
		version[c.Session] = i
	}
	return msgs, version
}

type heldSnapshot struct {
	snap raft.FSMSnapshot
	at   uint64 // applied index when it was taken
}

// One goroutine applies (and, as the contract requires, takes snapshots);
// another persists each snapshot while applies go on and restores it into a
// fresh FSM; readers call Get, MessagesAfter and friends throughout. Run with
// -race.
func TestSnapshotPersistAndReadsRunConcurrentlyWithApply(t *testing.T) {
	entries := uint64(6000)
	if testing.Short() {
		entries = 1500
	}
	f := New(DefaultLimits)
	snaps := make(chan heldSnapshot, 4)
	done := make(chan struct{})
	var wg sync.WaitGroup

	// Applier: also the only goroutine that calls Snapshot.
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(snaps)
		for i := uint64(1); i <= entries; i++ {
			c := concCommand(i)
			r, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Index: i, Data: c.Encode()}).(*Result)
			if !ok || r.Status != StatusOK {
				t.Errorf("apply %d: %+v", i, r)
				return
			}
			if i%500 == 0 {
				snap, err := f.Snapshot()
				if err != nil {
					t.Errorf("Snapshot: %v", err)
					return
				}
				snaps <- heldSnapshot{snap, i} // Persist runs while we go on applying
			}
		}
	}()

	// Persister: Persist, Restore into a fresh FSM, check it is exactly the
	// state at the snapshot's index.
	var restored atomic.Int32
	wg.Add(1)
	go func() {
		defer wg.Done()
		for h := range snaps {
			var sink bufSink
			if err := h.snap.Persist(&sink); err != nil {
				t.Errorf("Persist: %v", err)
				continue
			}
			h.snap.Release()
			live := f.AppliedIndex()
			g := New(DefaultLimits)
			if err := restoreBytes(g, sink.Bytes()); err != nil {
				t.Errorf("Restore: %v", err)
				continue
			}
			if g.AppliedIndex() != h.at || g.AppliedIndex() > live {
				t.Errorf("snapshot applied index %d, taken at %d, live %d", g.AppliedIndex(), h.at, live)
			}
			wantMsgs, wantVersion := concExpect(h.at)
			all := sessions(g)
			if len(all) != len(wantVersion) {
				t.Errorf("snapshot at %d holds %d sessions, want %d", h.at, len(all), len(wantVersion))
			}
			for _, s := range all {
				if err := checkSession(s); err != nil {
					t.Errorf("snapshot at %d: %v", h.at, err)
				}
				if s.MessageCount() != wantMsgs[s.ID] || s.Version != wantVersion[s.ID] {
					t.Errorf("snapshot at %d: session %s has %d messages at version %d, want %d at %d",
						h.at, s.ID, s.MessageCount(), s.Version, wantMsgs[s.ID], wantVersion[s.ID])
				}
			}
			restored.Add(1)
		}
	}()

	// Readers.
	var readers sync.WaitGroup
	for r := 0; r < 3; r++ {
		readers.Add(1)
		go func(r int) {
			defer readers.Done()
			var last uint64
			for n := 0; ; n++ {
				select {
				case <-done:
					return
				default:
				}
				applied := f.AppliedIndex()
				if applied < last {
					t.Errorf("applied index went back from %d to %d", last, applied)
					return
				}
				last = applied
				s, ok := f.Get("s" + strconv.Itoa((n*7+r)%concSessions))
				if !ok {
					continue
				}
				if err := checkSession(s); err != nil {
					t.Error(err)
					return
				}
				page := s.MessagesAfter(uint64(n%5), 3)
				for i, m := range page {
					if m.Seq != uint64(n%5+i+1) {
						t.Errorf("MessagesAfter(%d, 3)[%d] has seq %d", n%5, i, m.Seq)
						return
					}
				}
				for _, name := range s.FieldNames() {
					if v, ok := s.Field(name); !ok || len(v) == 0 {
						t.Errorf("field %q listed but empty", name)
						return
					}
				}
				_ = f.Len()
			}
		}(r)
	}

	wg.Wait()
	close(done)
	readers.Wait()
	if want := int32(entries / 500); restored.Load() != want && !t.Failed() {
		t.Errorf("restored %d snapshots, want %d", restored.Load(), want)
	}
	checkInvariants(t, f)
}

func TestWaitAppliedReturnsAtOnceForAnAppliedIndex(t *testing.T) {
	f := New(DefaultLimits)
	if err := f.WaitApplied(context.Background(), 0); err != nil {
		t.Fatalf("WaitApplied(0) on a new FSM: %v", err)
	}
	applyLog(t, f, 5, putCmd("s", "f", "1"))
	for _, idx := range []uint64{0, 1, 5} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // an applied index must not even look at ctx
		if err := f.WaitApplied(ctx, idx); err != nil {
			t.Errorf("WaitApplied(%d) with applied 5: %v", idx, err)
		}
	}
}

func TestWaitAppliedBlocksUntilTheIndexIsApplied(t *testing.T) {
	f := New(DefaultLimits)
	type waiter struct {
		index uint64
		done  chan error
	}
	var waiters []waiter
	for _, idx := range []uint64{3, 5, 5, 9} {
		w := waiter{idx, make(chan error, 1)}
		waiters = append(waiters, w)
		go func() { w.done <- f.WaitApplied(context.Background(), w.index) }()
	}
	returned := func(w waiter) bool {
		select {
		case err := <-w.done:
			if err != nil {
				t.Fatalf("WaitApplied(%d): %v", w.index, err)
			}
			return true
		case <-time.After(20 * time.Millisecond):
			return false
		}
	}
	mustReturn := func(w waiter) {
		t.Helper()
		select {
		case err := <-w.done:
			if err != nil {
				t.Fatalf("WaitApplied(%d): %v", w.index, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("WaitApplied(%d) still blocked with applied index %d", w.index, f.AppliedIndex())
		}
	}
	applyLog(t, f, 1, putCmd("s", "f", "1"))
	applyLog(t, f, 2, putCmd("s", "f", "2"))
	for _, w := range waiters {
		if returned(w) {
			t.Fatalf("WaitApplied(%d) returned with applied index 2", w.index)
		}
	}
	// A non-command entry advances the index too.
	f.Apply(&raft.Log{Type: raft.LogConfiguration, Index: 3})
	mustReturn(waiters[0])
	if returned(waiters[1]) {
		t.Fatalf("WaitApplied(5) returned with applied index 3")
	}
	// A batch publishes its last index.
	f.ApplyBatch([]*raft.Log{
		{Type: raft.LogCommand, Index: 4, Data: enc(putCmd("s", "f", "4"))},
		{Type: raft.LogCommand, Index: 5, Data: enc(putCmd("s", "f", "5"))},
		{Type: raft.LogCommand, Index: 6, Data: enc(putCmd("s", "f", "6"))},
	})
	mustReturn(waiters[1])
	mustReturn(waiters[2])
	// Restore publishes the snapshot's index.
	src := New(DefaultLimits)
	applyLog(t, src, 10, putCmd("x", "f", "1"))
	if err := restoreBytes(f, snapshotBytes(t, src)); err != nil {
		t.Fatal(err)
	}
	mustReturn(waiters[3])
}

func TestWaitAppliedReturnsTheContextErrorWhenItEnds(t *testing.T) {
	f := New(DefaultLimits)
	applyLog(t, f, 1, putCmd("s", "f", "1"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(ctx, 2) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("WaitApplied after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WaitApplied did not return after its context was canceled")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := f.WaitApplied(ctx, 100); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied past its deadline = %v, want context.DeadlineExceeded", err)
	}
}

// Many waiters and a stream of applies: every waiter returns, none early.
func TestWaitAppliedUnderConcurrentApplies(t *testing.T) {
	f := New(DefaultLimits)
	const n = 300
	var wg sync.WaitGroup
	for i := uint64(1); i <= n; i += 7 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := f.WaitApplied(ctx, i); err != nil {
				t.Errorf("WaitApplied(%d): %v", i, err)
			} else if got := f.AppliedIndex(); got < i {
				t.Errorf("WaitApplied(%d) returned at applied index %d", i, got)
			}
		}()
	}
	var data bytes.Buffer
	for i := uint64(1); i <= n; i++ {
		data.Reset()
		data.Write(enc(putCmd("s", "f", strconv.FormatUint(i, 10))))
		f.Apply(&raft.Log{Type: raft.LogCommand, Index: i, Data: data.Bytes()})
	}
	wg.Wait()
}
