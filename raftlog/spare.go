package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
)

// The next segment is made ahead of time, written full of zeros. A
// preallocated segment (fallocate) reads as zeros too, but its blocks are
// unwritten extents: the first write into each block turns it into a
// written one, a metadata change, so the fdatasync after it commits a
// journal transaction as well. Into blocks that were written before, an
// fdatasync flushes the data alone. On the machine the project is measured
// on, a small write and fdatasync took a third less time and a quarter less
// CPU into written blocks (BenchmarkSyncInto…, BENCHMARKS.md).
// Writing a segment's worth of zeros takes far too long to do when the
// writer moves to a new segment, so once the current segment is half full a
// goroutine fills the spare, a MiB at a time with a flush after each, so
// that the log's own flushes never queue behind a large one. The first
// segment of a new log is preallocated; later ones start from the spare
// when it is ready in time. The spare is made only where the volume has
// several times its size free (checked once per segment), and a write of
// the log that fails deletes a finished spare, so that it never holds space
// the log itself needs.

// spareName is a finished spare: written in full and flushed under
// spareTemp, then renamed, so a spare that survives a restart is whole and
// is kept. Neither is a segment name, so replay never reads them; Open
// deletes an unfinished one.
const (
	spareName = "next.spare"
	spareTemp = "next.spare.tmp"
)

// spareEarly is how much a preallocated segment holds before the log,
// now plainly in use, starts the spare to move into (see commit).
const spareEarly = 1 << 20

// spareChunk is how much of the spare is written, and flushed, at a time.
const spareChunk = 1 << 20

// spareSegment prepares the file of the next segment. prepare, take and
// discard are called by the holder of the log's turn only; close by Close
// once it took the turn for good.
type spareSegment struct {
	dir  string
	size int64

	mu      sync.Mutex
	filling bool // a goroutine is writing the spare
	ready   bool // the spare is complete and flushed
	tried   bool // prepare ran for the current segment: one attempt each
	stop    chan struct{}
	done    sync.WaitGroup
}

func newSpareSegment(dir string, size int64) *spareSegment {
	s := &spareSegment{dir: dir, size: size, stop: make(chan struct{})}
	_ = os.Remove(s.temp()) // unfinished, from before a crash
	if fi, err := os.Stat(s.path()); err == nil && fi.Size() == size {
		s.ready = true // finished before a restart
	} else {
		_ = os.Remove(s.path())
	}
	return s
}

func (s *spareSegment) path() string { return filepath.Join(s.dir, spareName) }
func (s *spareSegment) temp() string { return filepath.Join(s.dir, spareTemp) }

// prepare starts filling a spare unless one is ready or being filled, or
// this segment's attempt was made already: a volume without room to spare
// (or a failing one) costs one check per segment, not one per commit.
func (s *spareSegment) prepare() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.filling || s.ready || s.tried {
		return
	}
	s.tried = true
	if !roomIn(s.dir, s.size) {
		return
	}
	s.filling = true
	s.done.Add(1)
	go s.fill()
}

// take renames the spare to path and reports true, if one is ready; the
// caller makes the rename durable (syncDir) before it writes to path. It
// starts a new segment's attempt either way.
func (s *spareSegment) take(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tried = false
	if !s.ready {
		return false
	}
	if _, err := os.Lstat(path); err == nil {
		return false // never replace a segment; the spare stays for later
	}
	s.ready = false
	if err := os.Rename(s.path(), path); err != nil {
		_ = os.Remove(s.path())
		return false
	}
	return true
}

// isReady reports whether a finished spare is waiting to be taken.
func (s *spareSegment) isReady() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// discard gives a finished spare's space back: a write of the log failed,
// perhaps for want of room, which the spare must not keep from it.
func (s *spareSegment) discard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		s.ready = false
		_ = os.Remove(s.path())
	}
}

// close stops a fill in progress and waits for it.
func (s *spareSegment) close() {
	close(s.stop)
	s.done.Wait()
}

func (s *spareSegment) fill() {
	defer s.done.Done()
	err := s.write(s.temp())
	if err == nil {
		err = os.Rename(s.temp(), s.path())
	}
	if err != nil {
		_ = os.Remove(s.temp())
	}
	s.mu.Lock()
	s.filling, s.ready = false, err == nil
	s.mu.Unlock()
}

var errSpareStopped = errors.New("raftlog: spare segment not finished")

// write fills path with s.size zeros, flushing each chunk.
func (s *spareSegment) write(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	zeros := make([]byte, spareChunk)
	for off := int64(0); off < s.size; off += spareChunk {
		select {
		case <-s.stop:
			return errSpareStopped
		default:
		}
		n := min(int64(spareChunk), s.size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
	}
	return nil
}
