// Package raftlog is a write-ahead log shared by every raft group (shard) of
// a node. Each shard sees its own raft.LogStore and raft.StableStore
// (ShardLog), but all of them write into one sequence of segment files
// through one writer goroutine, which turns every write that is waiting
// when it starts — leader appends and follower appendEntries of all shards,
// term and vote changes — into one write and one fdatasync (group commit).
// A node then pays for one disk flush per batch, not one per shard. A write
// that finds the log idle is written by its caller instead (writer.go).
//
// Durability: no call returns success before its records are on disk. On
// Open, every segment is read back; a record that is cut short or fails its
// CRC-32C at the end of the newest segment is a write that never completed
// (nobody was told it succeeded) and is truncated away. A damaged record
// anywhere else is corruption and Open fails.
//
// Where the volume has room to spare, a segment starts at its full size,
// so that an fdatasync flushes data without a new file size: written full
// of zeros ahead of time by a background goroutine (spare.go), or else
// preallocated. The zeros after the newest segment's records are space not
// yet used, and a full segment is cut to its records before the next one
// starts.
//
// Space: each shard keeps an in-memory index from entry index to record
// location. A segment file is deleted once no shard has a live entry in it
// and every older segment is gone; a shard whose old entries hold the
// oldest segment back for too long has its live entries rewritten into
// the newest segment. Stable values are re-written at the start of every
// segment, so the oldest remaining segment always holds them all.
package raftlog

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// ErrClosed is returned by every operation after Close.
var ErrClosed = errors.New("raftlog: log is closed")

// Options tune a Log. The zero value is usable.
type Options struct {
	// SegmentSize is the size past which writes go to a new segment file.
	// Default 64 MiB.
	SegmentSize int64
	// MaxSegments is how many segments may pile up before the shards that
	// hold the oldest one back have their live entries rewritten. Default 8.
	MaxSegments int
	// GroupCommitWait bounds how long the writer holds a batch open for
	// more requests while the log is busy (see groupWait). Default 1ms;
	// negative: never wait.
	GroupCommitWait time.Duration
	Logger          *slog.Logger
}

// maxBatchBytes bounds one group commit so a burst cannot build one huge
// write that delays everything queued behind it.
const maxBatchBytes = 8 << 20

// Log is a node's shared raft log. Its methods are safe for concurrent use.
// Writes block until they are durable; reads are served from the page cache
// or disk through the in-memory index and never wait for the writer.
type Log struct {
	dir    string
	lock   *os.File // held with flock while the log is open
	opts   Options
	logger *slog.Logger

	// mu guards shards and segs. The holder of the turn (writer.go) is
	// their only mutator and takes mu for writing only while it changes
	// them, so it may read them without the lock.
	mu     sync.RWMutex
	shards map[uint32]*shardState
	segs   []*segment // oldest first; the last one is written to

	reqs      chan *request
	turn      chan struct{} // holds a token while nobody writes (writer.go)
	queued    atomic.Int64  // requests handed to the writer, not yet in a batch (until Close)
	quit      chan struct{} // closed by Close
	stopped   chan struct{} // closed when the writer has exited
	closeOnce sync.Once

	spare *spareSegment // the next segment's file, written ahead (spare.go)

	// What only the holder of the turn uses.
	buf          []byte        // the encode buffer
	batch        []*request    // the batch being written
	lastRequests int           // requests in the last batch
	lastWrite    time.Duration // its write and fdatasync
	stats        struct{ batches, requests, bytes, writeNanos, spares, held, lone atomic.Uint64 }
}

// request is one write, waiting for the writer or written by its caller.
type request struct {
	shard    uint32
	kind     recordKind
	logs     []*raft.Log // kindEntry
	min, max uint64      // kindDeleteRange
	prefix   bool        // kindDeleteRange: from the start of the log (compaction)
	key, val []byte      // kindStable
	done     chan error

	offs []int64 // entry record offsets in the batch buffer, set by encode
}

func (r *request) size() int {
	n := headerSize + 16
	for _, l := range r.logs {
		n += entrySize(l)
	}
	return n + headerSize + len(r.key) + len(r.val)
}

// Open opens or creates the log in dir and restores every shard's index.
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 64 << 20
	}
	if opts.MaxSegments < 2 {
		opts.MaxSegments = 8
	}
	if opts.GroupCommitWait == 0 {
		opts.GroupCommitWait = time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{lock: lock,
		dir: dir, opts: opts, logger: opts.Logger,
		shards:  map[uint32]*shardState{},
		reqs:    make(chan *request, 1024),
		turn:    make(chan struct{}, 1),
		quit:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if err := l.replay(); err != nil {
		l.closeSegments()
		lock.Close()
		return nil, err
	}
	l.spare = newSpareSegment(dir, opts.SegmentSize)
	l.turn <- struct{}{}
	go l.run()
	return l, nil
}

// replay rebuilds the index from the segment files, oldest first.
func (l *Log) replay() error {
	seqs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	for i, seq := range seqs {
		seg, err := openSegment(l.dir, seq, false, 0)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
		moved := map[uint32][]movedEntry{}
		valid, size, zeroTail, err := seg.scan(func(off int64, r record) error { return l.replayRecord(seg, off, r, moved) })
		if err != nil {
			return fmt.Errorf("raftlog: %s at offset %d: %w", seg.path, valid, err)
		}
		// A rewrite without its end marker was cut short too.
		for _, m := range moved {
			if m[0].loc.off < valid {
				valid, zeroTail = m[0].loc.off, false
			}
		}
		last := i == len(seqs)-1
		if valid < size && !(last && zeroTail) { // the newest segment's preallocated space is kept
			if !last {
				return fmt.Errorf("raftlog: %s: %w at offset %d of %d", seg.path, errCorrupt, valid, size)
			}
			l.logger.Warn("raft log: truncating an incomplete write at the end of the log",
				"segment", seg.path, "offset", valid, "dropped_bytes", size-valid)
			if err := seg.f.Truncate(valid); err != nil {
				return err
			}
			if err := fdatasync(seg.f); err != nil {
				return err
			}
		}
		seg.size = valid
	}
	if len(l.segs) == 0 {
		seg, err := openSegment(l.dir, 1, true, l.opts.SegmentSize)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, seg)
	}
	return nil
}

// movedEntry is a kindMoved record read during replay, waiting for the
// kindMovedEnd that makes its group take effect. A group never spans
// segments: one that is not closed by the end of its segment was torn.
type movedEntry struct {
	index uint64
	loc   location
}

func (l *Log) replayRecord(seg *segment, off int64, r record, moved map[uint32][]movedEntry) error {
	switch r.kind {
	case kindDrop:
		delete(l.shards, r.shard)
		return nil
	case kindMoved:
		if len(r.payload) < entryFixed {
			return errCorrupt
		}
		moved[r.shard] = append(moved[r.shard], movedEntry{entryIndex(r.payload), location{seg: seg, off: off, n: int32(r.size)}})
		return nil
	}
	st := l.state(r.shard)
	switch r.kind {
	case kindMovedEnd:
		st.reset()
		for _, m := range moved[r.shard] {
			st.store(m.index, m.loc)
		}
		delete(moved, r.shard)
	case kindEntry:
		if len(r.payload) < entryFixed {
			return errCorrupt
		}
		st.store(entryIndex(r.payload), location{seg: seg, off: off, n: int32(r.size)})
	case kindDeleteRange:
		min, max, err := decodeDeleteRange(r.payload)
		if err != nil {
			return err
		}
		st.deleteRange(min, max)
	case kindStable:
		k, v, err := decodeStable(r.payload)
		if err != nil {
			return err
		}
		st.stable[string(k)] = append([]byte(nil), v...)
	default:
		return fmt.Errorf("unknown record kind %d", r.kind)
	}
	return nil
}

// state returns shard's state, creating it. The holder of the turn, or Open.
func (l *Log) state(shard uint32) *shardState {
	st := l.shards[shard]
	if st == nil {
		st = newShardState()
		l.mu.Lock()
		l.shards[shard] = st
		l.mu.Unlock()
	}
	return st
}

// Shard returns the log of one shard. It may be called for a shard that has
// no state yet; the state appears with its first write.
func (l *Log) Shard(id uint32) *ShardLog { return &ShardLog{log: l, id: id} }

// Shards lists the shards that have entries or stable values.
func (l *Log) Shards() []uint32 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]uint32, 0, len(l.shards))
	for id := range l.shards {
		out = append(out, id)
	}
	return out
}

// DropShard durably forgets a shard: its entries and stable values. The
// space is reclaimed as segments age out. The other shards are untouched.
func (l *Log) DropShard(id uint32) error {
	return l.submit(&request{shard: id, kind: kindDrop})
}

// Stats counts the log's work since Open.
type Stats struct {
	Batches   uint64        // group commits: one write and one fdatasync each
	Requests  uint64        // write requests they carried
	Bytes     uint64        // bytes written
	WriteTime time.Duration // time spent in write and fdatasync
	// SpareSegments counts the segments that started from a spare written
	// full of zeros ahead of time (spare.go), not from a preallocated file.
	SpareSegments uint64
	// HeldBatches counts the batches held open for more requests because
	// the log was busy (groupWait).
	HeldBatches uint64
	// LoneBatches counts the batches of one request its caller wrote
	// itself, finding the log idle (writeAlone).
	LoneBatches uint64
}

// Stats reports the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Batches: l.stats.batches.Load(), Requests: l.stats.requests.Load(),
		Bytes: l.stats.bytes.Load(), WriteTime: time.Duration(l.stats.writeNanos.Load()),
		SpareSegments: l.stats.spares.Load(), HeldBatches: l.stats.held.Load(), LoneBatches: l.stats.lone.Load(),
	}
}

// Segments is the number of segment files the log keeps now.
func (l *Log) Segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

// Close stops the writer, failing writes still queued with ErrClosed, waits
// for a write its caller is making, and closes the files. It is safe to
// call more than once.
func (l *Log) Close() error {
	l.closeOnce.Do(func() {
		close(l.quit)
		<-l.stopped
		<-l.turn // a lone write in progress ends; later ones find none
		l.spare.close()
		l.closeSegments()
		l.lock.Close()
	})
	return nil
}

func (l *Log) closeSegments() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		s.f.Close()
	}
}

// submit writes r itself if the log is idle (writeAlone), or hands it to
// the writer, and returns its outcome.
func (l *Log) submit(r *request) error {
	r.done = make(chan error, 1)
	if done, err := l.writeAlone(r); done {
		return err
	}
	l.queued.Add(1)
	select {
	case l.reqs <- r:
	case <-l.quit:
		l.queued.Add(-1)
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-l.stopped:
		// The writer answers every request it took before it exits.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}
