package raftlog

import (
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestGroupWaitHoldsBatchesOnlyWhileOthersWrite(t *testing.T) {
	for _, c := range []struct {
		lastRequests         int
		lastWrite, max, want time.Duration
	}{
		{0, 0, time.Millisecond, 0},                                           // nothing written yet
		{1, 5 * time.Millisecond, time.Millisecond, 0},                        // a lone writer
		{2, 5 * time.Millisecond, time.Millisecond, time.Millisecond},         // busy, slow disk: the bound
		{8, 200 * time.Microsecond, time.Millisecond, 200 * time.Microsecond}, // busy, fast disk: as long as a write
		{8, 5 * time.Millisecond, -1, 0},                                      // turned off
	} {
		if got := groupWait(c.lastRequests, c.lastWrite, c.max); got != c.want {
			t.Errorf("groupWait(%d, %v, %v) = %v, want %v", c.lastRequests, c.lastWrite, c.max, got, c.want)
		}
	}
}

// slowWrites makes every write take d longer, so that the writer's hold,
// as long as the last write took, is long enough to see; the first write
// also waits for gate to close, when gate is not nil, after closing the
// channel returned. Call it before openLog, so that the hook is removed
// only after the log is closed.
func slowWrites(t *testing.T, d time.Duration, gate chan struct{}) <-chan struct{} {
	var once sync.Once
	entered := make(chan struct{})
	writeFault = func(uint64) error {
		if gate != nil {
			once.Do(func() { close(entered); <-gate })
		}
		time.Sleep(d)
		return nil
	}
	t.Cleanup(func() { writeFault = nil })
	return entered
}

func store(t *testing.T, s *ShardLog, e *raft.Log) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.StoreLogs([]*raft.Log{e}) }()
	return done
}

func stored(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a write was never answered")
	}
}

func TestALoneWriterIsNeverHeldBack(t *testing.T) {
	slowWrites(t, 50*time.Millisecond, nil)
	l := openLog(t, t.TempDir(), Options{GroupCommitWait: time.Hour, Logger: quietLogger()})
	s := l.Shard(1)
	for i := uint64(1); i <= 5; i++ {
		stored(t, store(t, s, entry(1, i, 1)))
	}
	if st := l.Stats(); st.HeldBatches != 0 || st.Batches != 5 || st.LoneBatches != 5 {
		t.Fatalf("serial writes: %d batches, %d held, %d written by their caller; want 5, none held, all 5 by their caller",
			st.Batches, st.HeldBatches, st.LoneBatches)
	}
}

func TestWritesOfABusyLogShareABatch(t *testing.T) {
	gate := make(chan struct{})
	writing := slowWrites(t, 300*time.Millisecond, gate)
	l := openLog(t, t.TempDir(), Options{GroupCommitWait: time.Hour, Logger: quietLogger()})
	a, b, c := l.Shard(1), l.Shard(2), l.Shard(3)

	// Two writers queue while a first write is under way, and the two then
	// share a batch, which tells the writer it is busy.
	first := store(t, a, entry(1, 1, 1))
	<-writing
	second, third := store(t, b, entry(2, 1, 1)), store(t, c, entry(3, 1, 1))
	for l.queued.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	stored(t, first)
	stored(t, second)
	stored(t, third)
	before := l.Stats()
	if before.Batches != 2 || before.Requests != 3 {
		t.Fatalf("%d requests in %d batches, want 3 in 2: the two queued writes did not share one", before.Requests, before.Batches)
	}
	if before.LoneBatches != 1 {
		t.Fatalf("%d batches written by their caller, want 1: the first write, alone; the two that found it writing wait for the writer", before.LoneBatches)
	}

	// The next write is held for as long as that write took (300 ms or
	// more), and one made meanwhile joins it.
	fourth := store(t, a, entry(1, 2, 1))
	time.Sleep(30 * time.Millisecond)
	fifth := store(t, b, entry(2, 2, 1))
	stored(t, fourth)
	stored(t, fifth)
	after := l.Stats()
	if after.Batches-before.Batches != 1 || after.HeldBatches-before.HeldBatches != 1 || after.LoneBatches != before.LoneBatches {
		t.Fatalf("two writes 30 ms apart on a busy log: %d batches, %d held, %d written by their caller; want one, held, by the writer",
			after.Batches-before.Batches, after.HeldBatches-before.HeldBatches, after.LoneBatches-before.LoneBatches)
	}
	requireRange(t, a, 1, 2, func(i uint64) *raft.Log { return entry(1, i, 1) })
	requireRange(t, b, 1, 2, func(i uint64) *raft.Log { return entry(2, i, 1) })
	requireRange(t, c, 1, 1, func(i uint64) *raft.Log { return entry(3, i, 1) })
}
