package raftlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// Writing takes the turn, a token only one goroutine holds at a time: the
// writer goroutine, for each batch, or a caller whose write is alone
// (writeAlone). Whoever holds it owns what a batch changes (the encode
// buffer, the segments, the shards' indexes, the spare) and may read them
// without Log.mu; passing the token orders one holder's changes before the
// next one's reads.

// run is the writer goroutine: it takes every request waiting, commits them
// as one batch and answers them all with the batch's outcome.
func (l *Log) run() {
	defer close(l.stopped)
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	for {
		var first *request
		select {
		case first = <-l.reqs:
		case <-l.quit:
			l.failQueued()
			return
		}
		select {
		case <-l.turn:
		case <-l.quit:
			l.queued.Add(-1)
			first.done <- ErrClosed
			l.failQueued()
			return
		}
		batch, size := l.gather(append(l.batch[:0], first), first.size(), nil)
		if wait := groupWait(l.lastRequests, l.lastWrite, l.opts.GroupCommitWait); wait > 0 && size < maxBatchBytes {
			l.stats.held.Add(1)
			hold.Reset(wait)
			batch, _ = l.gather(batch, size, hold.C)
			hold.Stop()
		}
		l.queued.Add(-int64(len(batch)))
		l.writeBatch(batch)
		l.reclaim()
		l.turn <- struct{}{}
	}
}

// writeAlone commits r on the caller's goroutine if nobody is writing, no
// request waits for the writer, and the last batch was a lone one too (so
// the writer would not hold this one open: see groupWait). A write by
// itself then costs no hand-off to the writer goroutine and back, two
// thread wakeups on a busy machine; across three nodes under load that
// was about 6 % more appends per second (BENCHMARKS.md). Like the writer
// after a batch, it then reclaims old segments, so that the space is free
// before the next write. It reports whether it wrote r;
// if not, r goes to the writer.
func (l *Log) writeAlone(r *request) (bool, error) {
	select {
	case <-l.turn:
	default:
		return false, nil
	}
	select {
	case <-l.quit:
		l.turn <- struct{}{}
		return true, ErrClosed
	default:
	}
	if l.queued.Load() > 0 || groupWait(l.lastRequests, l.lastWrite, l.opts.GroupCommitWait) > 0 {
		l.turn <- struct{}{}
		return false, nil
	}
	l.stats.lone.Add(1)
	l.writeBatch(append(l.batch[:0], r))
	l.reclaim()
	l.turn <- struct{}{}
	return true, <-r.done
}

// writeBatch commits batch and answers every request in it with the
// outcome. The caller holds the turn.
func (l *Log) writeBatch(batch []*request) {
	// The write and fdatasync alone, as commit counts them: a batch that
	// failed before writing, or the start of a new segment, says nothing
	// about how long the disk takes.
	written := l.stats.writeNanos.Load()
	err := l.commit(batch)
	l.lastRequests, l.lastWrite = len(batch), time.Duration(l.stats.writeNanos.Load()-written)
	if err != nil {
		l.compactAnyway(batch)
		l.spare.discard()
	}
	for i, r := range batch {
		if err != nil && r.kind == kindDeleteRange && r.prefix {
			r.done <- nil
		} else {
			r.done <- err
		}
		batch[i] = nil
	}
	l.batch = batch[:0]
}

// gather adds requests to batch until it holds maxBatchBytes or none is
// ready: with hold nil, none is queued now; otherwise none came before hold
// fired (or the log was closed).
func (l *Log) gather(batch []*request, size int, hold <-chan time.Time) ([]*request, int) {
	for size < maxBatchBytes {
		var r *request
		if hold == nil {
			select {
			case r = <-l.reqs:
			default:
				return batch, size
			}
		} else {
			select {
			case r = <-l.reqs:
			case <-hold:
				return batch, size
			case <-l.quit: // write what was taken; run then stops
				return batch, size
			}
		}
		batch = append(batch, r)
		size += r.size()
	}
	return batch, size
}

// groupWait is how long the writer holds a batch open for more requests
// before writing it. Every batch costs a write and an fdatasync, and each
// raft group's round waits for one: with many groups on few cores, the
// rounds of a busy node were mostly small and paid for those one by one.
// Waiting a little while the log is busy puts more of them in each batch.
// The last batch says whether it is: one request means a lone writer, whose
// next batch is not held; more mean others are writing too, and the batch is
// held for as long as the last write and fdatasync took (a fast disk waits
// little), at most max. (So a writer left alone is held once, right after
// the others stopped.)
func groupWait(lastRequests int, lastWrite, max time.Duration) time.Duration {
	if max <= 0 || lastRequests < 2 {
		return 0
	}
	return min(lastWrite, max)
}

// compactAnyway applies the prefix deletions of a batch that could not be
// written. A lost compaction record is harmless: after a restart the shard
// merely has more old entries below its snapshot, or, if their segments
// were deleted meanwhile, starts at the first one that is left. Doing it
// lets a full disk free itself: compaction deletes segments, and the
// compaction could not be recorded because the disk is full.
func (l *Log) compactAnyway(batch []*request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range batch {
		if st := l.shards[r.shard]; st != nil && r.kind == kindDeleteRange && r.prefix {
			st.deleteRange(r.min, r.max)
		}
	}
}

func (l *Log) failQueued() {
	for {
		select {
		case r := <-l.reqs:
			l.queued.Add(-1)
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// commit writes the batch to the newest segment, starting a new one first
// when it is full (or is preallocated and a spare is ready), makes it
// durable with one fdatasync and only then updates the index. On error
// nothing of the batch is visible and the segment is cut back to where it
// was, so a later batch can succeed (for example once a full disk has room
// again).
func (l *Log) commit(batch []*request) error {
	seg := l.segs[len(l.segs)-1]
	size := 0
	for _, r := range batch {
		size += r.size()
	}
	full := seg.size+int64(size) > l.opts.SegmentSize
	if seg.size > 0 && (full || seg.preallocated && l.spare.isReady()) {
		if err := seg.cut(); err != nil {
			return fmt.Errorf("raftlog: close a segment: %w", err)
		}
		next, err := l.newSegment(seg.seq + 1)
		if err != nil {
			return fmt.Errorf("raftlog: start a new segment: %w", err)
		}
		l.mu.Lock()
		l.segs = append(l.segs, next)
		l.mu.Unlock()
		seg = next
	}
	buf := l.buf[:0]
	if seg.size == 0 && len(l.segs) > 1 {
		buf = l.appendStableValues(buf)
	}
	for _, r := range batch {
		buf = l.encode(buf, r)
	}
	l.buf = buf
	if err := l.write(seg, buf); err != nil {
		return err
	}
	l.mu.Lock()
	for _, r := range batch {
		l.apply(seg, r)
	}
	seg.size += int64(len(buf))
	l.mu.Unlock()
	if seg.size > l.opts.SegmentSize/2 || seg.preallocated && seg.size >= spareEarly {
		// Half full: time to write the next segment's spare. Not sooner,
		// so that a log that never fills one (a short-lived node, a test)
		// writes no spare. A preallocated segment, such as a new log's
		// first, is left for the spare as soon as it is ready, so a log
		// in use asks for one early.
		l.spare.prepare()
	}
	l.stats.batches.Add(1)
	l.stats.requests.Add(uint64(len(batch)))
	l.stats.bytes.Add(uint64(len(buf)))
	return nil
}

// newSegment starts segment seq from the spare if one is ready, else as a
// new (preallocated) file.
func (l *Log) newSegment(seq uint64) (*segment, error) {
	if l.spare.take(filepath.Join(l.dir, segmentName(seq))) {
		seg, err := openSegment(l.dir, seq, false, 0)
		if err == nil {
			if err = syncDir(l.dir); err != nil {
				seg.f.Close()
			}
		}
		if err == nil {
			l.stats.spares.Add(1)
			return seg, nil
		}
		// The renamed spare is no segment yet: nothing was written to it.
		_ = os.Remove(filepath.Join(l.dir, segmentName(seq)))
		return nil, err
	}
	return openSegment(l.dir, seq, true, l.opts.SegmentSize)
}

// writeFault, when set (by tests), fails the writes to the segments it
// returns an error for, as a full disk would.
var writeFault func(seq uint64) error

func (l *Log) write(seg *segment, buf []byte) error {
	start := time.Now()
	var err error
	if writeFault != nil {
		err = writeFault(seg.seq)
	}
	if err == nil {
		_, err = seg.f.WriteAt(buf, seg.size)
	}
	if err == nil {
		err = fdatasync(seg.f)
	}
	l.stats.writeNanos.Add(uint64(time.Since(start)))
	if err != nil {
		// Leave no partial batch behind: replay would accept a prefix
		// of it, and the next batch must start where this one did.
		if terr := seg.f.Truncate(seg.size); terr != nil {
			l.logger.Error("raft log: cannot cut back a failed write", "segment", seg.path, "error", terr)
		}
		return fmt.Errorf("raftlog: write: %w", err)
	}
	return nil
}

// appendStableValues writes every shard's stable store at the start of a
// segment, so that deleting the segments before it loses none of them.
func (l *Log) appendStableValues(buf []byte) []byte {
	ids := make([]uint32, 0, len(l.shards))
	for id := range l.shards {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		st := l.shards[id]
		keys := make([]string, 0, len(st.stable))
		for k := range st.stable {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			buf = appendStable(buf, id, []byte(k), st.stable[k])
		}
	}
	return buf
}

func (l *Log) encode(buf []byte, r *request) []byte {
	switch r.kind {
	case kindEntry, kindMoved:
		r.offs = r.offs[:0]
		for _, e := range r.logs {
			r.offs = append(r.offs, int64(len(buf)))
			buf = appendEntry(buf, r.kind, r.shard, e)
		}
		if r.kind == kindMoved {
			buf = appendEmpty(buf, kindMovedEnd, r.shard)
		}
	case kindDeleteRange:
		buf = appendDeleteRange(buf, r.shard, r.min, r.max)
	case kindStable:
		buf = appendStable(buf, r.shard, r.key, r.val)
	case kindDrop:
		buf = appendEmpty(buf, kindDrop, r.shard)
	}
	return buf
}

// apply updates the index for a written request. Caller holds mu.
func (l *Log) apply(seg *segment, r *request) {
	if r.kind == kindDrop {
		delete(l.shards, r.shard)
		return
	}
	st := l.shards[r.shard]
	if st == nil {
		st = newShardState()
		l.shards[r.shard] = st
	}
	switch r.kind {
	case kindMoved:
		st.reset()
		fallthrough
	case kindEntry:
		for i, e := range r.logs {
			st.store(e.Index, location{seg: seg, off: seg.size + r.offs[i], n: int32(entrySize(e))})
		}
	case kindDeleteRange:
		st.deleteRange(r.min, r.max)
	case kindStable:
		st.stable[string(r.key)] = append([]byte(nil), r.val...)
	}
}

// reclaim deletes the oldest segments while no shard has a live entry in
// them, and when too many remain, rewrites the live entries of the shards
// holding the oldest one so it can go at the next pass. The caller holds
// the turn; with nothing to reclaim (most of the time) it takes no lock.
func (l *Log) reclaim() {
	active := l.segs[len(l.segs)-1]
	oldestLive := active.seq
	if active.size == 0 && len(l.segs) > 1 {
		// The newest segment gets the stable values (term, vote) with its
		// first write, which has not succeeded yet (a full disk): until it
		// does, the segment before it holds the only whole copy.
		oldestLive = l.segs[len(l.segs)-2].seq
	}
	for _, st := range l.shards {
		if !st.empty() && st.locs[0].seg.seq < oldestLive {
			oldestLive = st.locs[0].seg.seq
		}
	}
	if l.segs[0].seq >= oldestLive && len(l.segs) <= l.opts.MaxSegments {
		return
	}
	var dead []*segment
	l.mu.Lock()
	for len(l.segs) > 1 && l.segs[0].seq < oldestLive {
		dead = append(dead, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	for _, s := range dead {
		s.f.Close()
		if err := os.Remove(s.path); err != nil {
			l.logger.Error("raft log: cannot delete an old segment", "segment", s.path, "error", err)
		}
	}
	if len(dead) > 0 {
		if err := syncDir(l.dir); err != nil {
			l.logger.Error("raft log: cannot sync the log directory", "error", err)
		}
	}
	if len(l.segs) <= l.opts.MaxSegments {
		return
	}
	oldest := l.segs[0]
	for id, st := range l.shards {
		if st.empty() || st.locs[0].seg != oldest {
			continue
		}
		if err := l.rewrite(id, st); err != nil {
			l.logger.Error("raft log: cannot rewrite a shard's entries", "shard", id, "error", err)
			return
		}
	}
}

// rewrite copies the live entries of one shard into the newest segment.
func (l *Log) rewrite(id uint32, st *shardState) error {
	logs := make([]*raft.Log, 0, len(st.locs))
	for idx := st.first; idx <= st.last; idx++ {
		e := new(raft.Log)
		if err := l.read(st.locs[idx-st.first], e); err != nil {
			return err
		}
		logs = append(logs, e)
	}
	l.logger.Info("raft log: rewriting a shard's entries to free an old segment",
		"shard", id, "entries", len(logs), "segment", l.segs[0].path)
	// One batch, so the moved entries land in one segment, in one write.
	return l.commit([]*request{{shard: id, kind: kindMoved, logs: logs}})
}

// read decodes the entry at loc. The caller holds mu (for reading) or the
// turn, so the segment cannot be closed underneath it.
func (l *Log) read(loc location, out *raft.Log) error {
	buf := make([]byte, loc.n)
	if _, err := loc.seg.f.ReadAt(buf, loc.off); err != nil {
		return fmt.Errorf("raftlog: read %s at %d: %w", loc.seg.path, loc.off, err)
	}
	r, err := parseRecord(buf)
	if err != nil || (r.kind != kindEntry && r.kind != kindMoved) {
		return fmt.Errorf("raftlog: %s at %d: %w", loc.seg.path, loc.off, errCorrupt)
	}
	return decodeEntry(r.payload, out)
}
