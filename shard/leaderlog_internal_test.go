package shard

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// stallingStore is an in-memory log store whose StoreLogs waits while it is
// held and fails while failing is set; it records the order of writes.
type stallingStore struct {
	*raft.InmemStore
	mu      sync.Mutex
	held    chan struct{} // StoreLogs waits until it is closed; nil: no wait
	failing error
	writes  [][2]uint64 // first and last index of each write that succeeded
}

func newStallingStore() *stallingStore { return &stallingStore{InmemStore: raft.NewInmemStore()} }

func (s *stallingStore) hold() {
	s.mu.Lock()
	s.held = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallingStore) let() {
	s.mu.Lock()
	if s.held != nil {
		close(s.held)
		s.held = nil
	}
	s.mu.Unlock()
}

func (s *stallingStore) fail(err error) {
	s.mu.Lock()
	s.failing = err
	s.mu.Unlock()
}

func (s *stallingStore) StoreLogs(logs []*raft.Log) error {
	s.mu.Lock()
	held, err := s.held, s.failing
	s.mu.Unlock()
	if held != nil {
		<-held
	}
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.writes = append(s.writes, [2]uint64{logs[0].Index, logs[len(logs)-1].Index})
	s.mu.Unlock()
	return s.InmemStore.StoreLogs(logs)
}

func (s *stallingStore) written() [][2]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][2]uint64(nil), s.writes...)
}

func commands(first, last uint64) []*raft.Log {
	var logs []*raft.Log
	for i := first; i <= last; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1, Type: raft.LogCommand, Data: []byte{byte(i)}})
	}
	return logs
}

// returnsWithin runs f and reports whether it returned within d.
func returnsWithin(d time.Duration, f func()) bool {
	done := make(chan struct{})
	go func() { f(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// newTestLeaderLog is a leaderLog over a stallingStore whose raft leads
// until lead(false).
func newTestLeaderLog(t *testing.T) (l *leaderLog, store *stallingStore, lead func(bool)) {
	store = newStallingStore()
	var leading atomic.Bool
	leading.Store(true)
	l = newLeaderLog(store)
	l.setLeader(leading.Load)
	t.Cleanup(func() { l.release(); l.Close() })
	return l, store, leading.Store
}

// TestALeaderDoesNotWaitForItsOwnWriteButNothingCountsAsDurableBeforeIt:
// a leader's batch of commands is queued and StoreLogs returns before the
// store has it; until the store does, the batch is not durable, and
// waiting for it ends when the write does.
func TestALeaderDoesNotWaitForItsOwnWriteButNothingCountsAsDurableBeforeIt(t *testing.T) {
	l, store, _ := newTestLeaderLog(t)

	store.hold()
	if !returnsWithin(time.Second, func() {
		if err := l.StoreLogs(commands(1, 3)); err != nil {
			t.Error(err)
		}
	}) {
		t.Fatal("a leader's StoreLogs waited for the store")
	}
	if got := l.durableThrough(); got != 0 {
		t.Fatalf("durable through %d while the write is held, want 0", got)
	}
	durable := make(chan bool, 1)
	go func() { durable <- l.awaitDurable(3) }()
	select {
	case <-durable:
		t.Fatal("awaitDurable returned while the write was held")
	case <-time.After(200 * time.Millisecond):
	}
	store.let()
	select {
	case ok := <-durable:
		if !ok {
			t.Fatal("awaitDurable did not report the written batch durable")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("awaitDurable did not return once the batch was written")
	}
	if got := l.durableThrough(); got != math.MaxUint64 {
		t.Fatalf("durable through %d with nothing queued, want everything", got)
	}
	var out raft.Log
	if err := store.GetLog(3, &out); err != nil {
		t.Fatalf("the store does not hold the queued batch: %v", err)
	}
}

// TestEverythingButALeadersCommandsIsWrittenInOrderBehindTheQueue: a
// follower's entries, a configuration entry and a deletion wait for the
// queued batch, reach the store after it, and return once durable.
func TestEverythingButALeadersCommandsIsWrittenInOrderBehindTheQueue(t *testing.T) {
	l, store, lead := newTestLeaderLog(t)

	store.hold()
	if err := l.StoreLogs(commands(1, 2)); err != nil {
		t.Fatal(err)
	}
	config := []*raft.Log{{Index: 3, Term: 1, Type: raft.LogConfiguration}}
	if returnsWithin(200*time.Millisecond, func() {
		if err := l.StoreLogs(config); err != nil {
			t.Error(err)
		}
	}) {
		t.Fatal("a configuration entry was written before the queued commands")
	}
	store.let()
	// The held call above goes on in its goroutine; wait for it to land.
	deadline := time.Now().Add(5 * time.Second)
	for len(store.written()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	lead(false)
	if err := l.StoreLogs(commands(4, 5)); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteRange(5, 5); err != nil {
		t.Fatal(err)
	}
	want := [][2]uint64{{1, 2}, {3, 3}, {4, 5}}
	if got := store.written(); len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("writes reached the store as %v, want %v", got, want)
	}
	if last, _ := store.LastIndex(); last != 4 {
		t.Fatalf("last index %d after deleting 5, want 4", last)
	}
}

// TestAFailedLeaderWriteIsRetriedAndRefusesLaterWritesMeanwhile: a queued
// batch the store refuses (a full disk) never counts as durable; later
// writes fail at once, so raft steps down; once the store takes the batch
// again, it is durable and writes go through.
func TestAFailedLeaderWriteIsRetriedAndRefusesLaterWritesMeanwhile(t *testing.T) {
	defer func(d time.Duration) { leaderLogRetry = d }(leaderLogRetry)
	leaderLogRetry = 10 * time.Millisecond
	l, store, _ := newTestLeaderLog(t)

	full := errors.New("no space left on device")
	store.fail(full)
	if err := l.StoreLogs(commands(1, 2)); err != nil {
		t.Fatalf("queued write: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	var err error
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		err = l.StoreLogs(commands(3, 3))
	}
	if !errors.Is(err, full) {
		t.Fatalf("a write after the failed one returned %v, want %v", err, full)
	}
	if err := l.DeleteRange(1, 2); !errors.Is(err, full) {
		t.Fatalf("a deletion after the failed write returned %v, want %v", err, full)
	}
	if returnsWithin(100*time.Millisecond, func() { l.awaitDurable(2) }) {
		t.Fatal("a batch that failed to be written counted as durable")
	}
	store.fail(nil)
	if !returnsWithin(5*time.Second, func() { l.awaitDurable(2) }) {
		t.Fatal("the batch did not become durable once the store took it")
	}
	if err := l.StoreLogs(commands(3, 3)); err != nil {
		t.Fatalf("write after the store recovered: %v", err)
	}
	if !returnsWithin(5*time.Second, func() { l.awaitDurable(3) }) {
		t.Fatal("a later batch did not become durable")
	}
	if got := store.written(); len(got) != 2 || got[0] != [2]uint64{1, 2} || got[1] != [2]uint64{3, 3} {
		t.Fatalf("writes reached the store as %v", got)
	}
}

// TestReleaseEndsWaitsForAWriteThatCannotHappen: a replica that closes
// while its queued batch cannot be written does not hang raft's shutdown
// on the state machine goroutine, and the batch still does not count as
// durable.
func TestReleaseEndsWaitsForAWriteThatCannotHappen(t *testing.T) {
	l, store, _ := newTestLeaderLog(t)
	store.fail(errors.New("input/output error"))
	if err := l.StoreLogs(commands(1, 1)); err != nil {
		t.Fatal(err)
	}
	var durable bool
	done := make(chan struct{})
	go func() { durable = l.awaitDurable(1); close(done) }()
	time.Sleep(50 * time.Millisecond)
	l.release()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("awaitDurable did not end on release")
	}
	if durable {
		t.Fatal("awaitDurable reported a failed write durable")
	}
	if !returnsWithin(5*time.Second, l.Close) {
		t.Fatal("Close hung on a write that keeps failing")
	}
	if got := l.durableThrough(); got != 0 {
		t.Fatalf("durable through %d after close, want 0", got)
	}
}

// TestQueuedEntriesAreReadableAndCompactionDoesNotWaitForThem: raft reads
// entries its cache no longer holds from the queue while they wait to be
// written, and a compaction of older entries (raft's snapshot goroutine,
// while the leader keeps queueing) goes ahead at once, even while the
// queued write fails.
func TestQueuedEntriesAreReadableAndCompactionDoesNotWaitForThem(t *testing.T) {
	l, store, lead := newTestLeaderLog(t)
	lead(false)
	if err := l.StoreLogs(commands(1, 4)); err != nil {
		t.Fatal(err)
	}
	lead(true)
	store.fail(errors.New("no space left on device"))
	if err := l.StoreLogs(commands(5, 7)); err != nil {
		t.Fatal(err)
	}
	var out raft.Log
	if err := l.GetLog(6, &out); err != nil || out.Index != 6 || out.Data[0] != 6 {
		t.Fatalf("queued entry 6: %+v, %v", out, err)
	}
	if err := l.GetLog(2, &out); err != nil || out.Index != 2 {
		t.Fatalf("stored entry 2: %+v, %v", out, err)
	}
	if !returnsWithin(time.Second, func() {
		if err := l.DeleteRange(1, 3); err != nil {
			t.Errorf("compaction below the queue: %v", err)
		}
	}) {
		t.Fatal("a compaction below the queue waited for it")
	}
	if first, _ := store.FirstIndex(); first != 4 {
		t.Fatalf("first index %d after compacting 1-3, want 4", first)
	}
}
