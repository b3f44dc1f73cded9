package shard

import (
	"math"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/sessiond/sessiond/fsm"
)

// A leader writes its own log in parallel with replicating it.
//
// hashicorp/raft's leader stores a batch of new entries in its log before
// it sends them to followers, and its leader loop waits for that write,
// fdatasync included: a write's commit waited for two log writes one after
// the other (the leader's, then a follower's), and the group's leader loop
// did nothing else meanwhile, commits of earlier entries included. Under
// load that wait was most of a round (BENCHMARKS.md).
//
// leaderLog sits between raft's log cache and the replica's log store. A
// leader's batch of commands is queued for a goroutine that writes it, and
// StoreLogs returns at once, so raft replicates the batch while it is being
// written (the Raft dissertation, 10.2.1). raft then counts the leader's
// copy toward a commit before it is durable, so raft's commit index may
// name entries that only a minority holds on disk (one follower of three).
// Nothing outside raft may see such a commit until the leader's copy is
// durable too, which makes the copies raft counted a durable majority:
//
//   - the state machine applies an entry only once it is durable here
//     (gatedFSM), and a write is acknowledged, and readable, only once it
//     is applied;
//   - the commit index sent to followers, which they apply up to, is cut to
//     what is durable here (heartbeatTransport.AppendEntries, commitFor).
//
// A node that loses power with entries still queued restarts without
// them; no replica applied them and no client was told of them, and raft
// treats them as entries that never reached this node. Votes and terms are
// written straight to the store, never queued.
//
// Everything else is written in order behind the queue: a follower's
// entries, configuration changes and no-ops, deletions. A write that fails
// is retried until it succeeds (a full disk frees up); until then the
// replica's later writes fail at once, so raft steps down and another node
// leads while this one cannot write.
type leaderLog struct {
	raft.LogStore // the replica's log store

	// leader reports whether raft, calling StoreLogs, leads; set once
	// raft runs (until then every write is direct).
	leader func() bool

	mu       sync.Mutex
	changed  *sync.Cond // the fields below changed
	queue    []*raft.Log
	writing  []*raft.Log // taken from queue, being written
	failed   error       // the last queued write failed; retrying
	closing  bool
	released bool          // awaitDurable no longer waits
	done     chan struct{} // closed when the writer goroutine exits

	// beforeWrite, when set (by tests), runs on the writer goroutine
	// before each queued batch is written.
	beforeWrite func()
}

// leaderLogRetry is the pause between attempts to write a queued batch that
// failed.
var leaderLogRetry = 200 * time.Millisecond

func newLeaderLog(store raft.LogStore) *leaderLog {
	l := &leaderLog{LogStore: store, done: make(chan struct{})}
	l.changed = sync.NewCond(&l.mu)
	go l.write()
	return l
}

// StoreLogs queues a leader's batch of commands and returns; anything else
// is written once everything queued is, and returns when durable. raft
// calls it from one goroutine only (its main loop), so nothing is queued
// while a direct write is under way.
func (l *leaderLog) StoreLogs(logs []*raft.Log) error {
	l.mu.Lock()
	if l.failed == nil && !l.closing && l.leader != nil && onlyCommands(logs) && l.leader() {
		l.queue = append(l.queue, logs...)
		l.changed.Broadcast()
		l.mu.Unlock()
		return nil
	}
	err := l.drained()
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.LogStore.StoreLogs(logs)
}

// StoreLog stores one entry; see StoreLogs.
func (l *leaderLog) StoreLog(log *raft.Log) error { return l.StoreLogs([]*raft.Log{log}) }

// DeleteRange deletes once the entries it covers that are queued are
// written. A prefix below the queue (compaction after a snapshot, from
// raft's snapshot goroutine while the leader keeps queueing) does not wait,
// and goes ahead even while a queued write keeps failing, so a full disk can
// still free space.
func (l *leaderLog) DeleteRange(min, max uint64) error {
	l.mu.Lock()
	for l.durableLocked() < max && l.failed == nil {
		l.changed.Wait()
	}
	err := l.failed
	if l.durableLocked() >= max {
		err = nil
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	return l.LogStore.DeleteRange(min, max)
}

// GetLog reads entry index from the queue while it waits to be written, so
// raft finds it even once its log cache has moved on; else from the store.
func (l *leaderLog) GetLog(index uint64, out *raft.Log) error {
	l.mu.Lock()
	for _, pending := range [][]*raft.Log{l.writing, l.queue} {
		if len(pending) > 0 && index >= pending[0].Index && index-pending[0].Index < uint64(len(pending)) {
			*out = *pending[index-pending[0].Index]
			l.mu.Unlock()
			return nil
		}
	}
	l.mu.Unlock()
	return l.LogStore.GetLog(index, out)
}

// drained waits until nothing is queued or being written, or a queued
// write failed. The caller holds mu.
func (l *leaderLog) drained() error {
	for l.failed == nil && (len(l.queue) > 0 || len(l.writing) > 0) {
		l.changed.Wait()
	}
	return l.failed
}

// durableThrough is the highest index that may be treated as durable here:
// everything below the oldest entry still queued or being written.
func (l *leaderLog) durableThrough() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.durableLocked()
}

func (l *leaderLog) durableLocked() uint64 {
	switch {
	case len(l.writing) > 0:
		return l.writing[0].Index - 1
	case len(l.queue) > 0:
		return l.queue[0].Index - 1
	}
	return math.MaxUint64
}

// awaitDurable blocks until entry index is durable here or release is
// called, and reports whether the entry is durable.
func (l *leaderLog) awaitDurable(index uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.durableLocked() < index && !l.released {
		l.changed.Wait()
	}
	return l.durableLocked() >= index
}

// release ends every awaitDurable, now and later, as the replica closes:
// raft's shutdown waits for its state machine goroutine.
func (l *leaderLog) release() {
	l.mu.Lock()
	l.released = true
	l.changed.Broadcast()
	l.mu.Unlock()
}

// write is the goroutine that writes what StoreLogs queues, everything
// queued at once, until the log closes with nothing left to write. A batch
// that cannot be written stays in writing, so it never counts as durable.
func (l *leaderLog) write() {
	defer close(l.done)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		for len(l.queue) == 0 && !l.closing {
			l.changed.Wait()
		}
		if len(l.queue) == 0 {
			return
		}
		l.writing, l.queue = l.queue, nil
		for {
			hook := l.beforeWrite
			l.mu.Unlock()
			if hook != nil {
				hook()
			}
			err := l.LogStore.StoreLogs(l.writing)
			l.mu.Lock()
			if err == nil {
				break
			}
			l.failed = err
			l.changed.Broadcast()
			if l.closing {
				return
			}
			l.mu.Unlock()
			time.Sleep(leaderLogRetry)
			l.mu.Lock()
		}
		l.writing, l.failed = nil, nil
		l.changed.Broadcast()
	}
}

// Close stops the writer once what is queued is written, or failed once
// more, and closes nothing else: the store belongs to the replica.
func (l *leaderLog) Close() {
	l.mu.Lock()
	l.closing = true
	l.changed.Broadcast()
	l.mu.Unlock()
	<-l.done
}

// onlyCommands reports whether logs holds client commands alone: the only
// entries a leader queues.
func onlyCommands(logs []*raft.Log) bool {
	for _, log := range logs {
		if log.Type != raft.LogCommand {
			return false
		}
	}
	return len(logs) > 0
}

// setLeader lets StoreLogs ask whether raft leads; until it is called every
// write is direct.
func (l *leaderLog) setLeader(leader func() bool) {
	l.mu.Lock()
	l.leader = leader
	l.mu.Unlock()
}

// gatedFSM applies committed entries once they are durable in this node's
// log (leaderLog), which makes every applied entry durable on a majority.
// Called by raft's state machine goroutine only.
type gatedFSM struct {
	*fsm.FSM
	log *leaderLog
}

// ApplyBatch waits until the batch is durable here, then applies it. If the
// replica closes first it applies nothing and answers ErrShutdown: the
// replica's state is then discarded.
func (g gatedFSM) ApplyBatch(logs []*raft.Log) []any {
	if len(logs) > 0 && !g.log.awaitDurable(logs[len(logs)-1].Index) {
		out := make([]any, len(logs))
		for i := range out {
			out[i] = ErrShutdown
		}
		return out
	}
	return g.FSM.ApplyBatch(logs)
}

// Apply is ApplyBatch for one entry.
func (g gatedFSM) Apply(l *raft.Log) any { return g.ApplyBatch([]*raft.Log{l})[0] }
