//go:build linux

package raftlog

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestNewSegmentsStartFromASpareWrittenAhead: while a segment fills, the
// next one is written full of zeros in the background, and the log moves
// into it when the current one is full; every entry reads back, before and
// after a restart, and a spare left unfinished by a crash is deleted on
// open.
func TestNewSegmentsStartFromASpareWrittenAhead(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	l := openLog(t, dir, opts)
	s := l.Shard(1)
	spare := filepath.Join(dir, spareName)
	waitForSpare := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			l.spare.mu.Lock()
			ready := l.spare.ready
			l.spare.mu.Unlock()
			if ready {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no spare segment was prepared")
			}
			time.Sleep(5 * time.Millisecond)
		}
		fi, err := os.Stat(spare)
		if err != nil || fi.Size() != opts.SegmentSize {
			t.Fatalf("spare: %v, %v; want %d bytes", fi, err, opts.SegmentSize)
		}
	}
	data := func(i uint64) []byte { return bytes.Repeat([]byte{byte(i)}, 4<<10) }
	next := uint64(1)
	for rotations := 0; rotations < 3; rotations++ {
		segs := l.segments()
		for l.segments() == segs {
			if l.newestSize() > opts.SegmentSize-8<<10 {
				waitForSpare() // written since the segment passed half
			}
			if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: data(next)}}); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	if got := l.Stats().SpareSegments; got != 3 {
		t.Fatalf("%d segments started from a spare, want 3", got)
	}
	check := func(s *ShardLog) {
		t.Helper()
		for i := uint64(1); i < next; i++ {
			var e raft.Log
			if err := s.GetLog(i, &e); err != nil || !bytes.Equal(e.Data, data(i)) {
				t.Fatalf("entry %d: %v", i, err)
			}
		}
	}
	check(s)
	l.Close()

	// A crash left a spare unfinished, and one that claims to be finished
	// but is short.
	for _, name := range []string{spareTemp, spareName} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("half of a spare"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	l = openLog(t, dir, opts)
	if fileExists(filepath.Join(dir, spareTemp)) {
		t.Fatal("an unfinished spare survived the restart")
	}
	check(l.Shard(1))
	if seqs, _ := listSegments(dir); len(seqs) != 4 {
		t.Fatalf("segments after restart: %v, want 4", seqs)
	}
	l.spare.mu.Lock()
	early := l.spare.ready || l.spare.filling
	l.spare.mu.Unlock()
	if early {
		t.Fatal("a spare is written for a segment that is not half full")
	}
	if _, err := os.Stat(spare); !os.IsNotExist(err) {
		t.Fatalf("the short spare is still there: %v", err)
	}
	// Writes that fill half of the newest segment have a new spare written.
	// (They stop once it is under way: a write that filled the segment
	// meanwhile would move the log into the finished spare.)
	started := func() bool {
		l.spare.mu.Lock()
		defer l.spare.mu.Unlock()
		return l.spare.filling || l.spare.ready
	}
	for l.segments() == 4 && !started() {
		if err := l.Shard(1).StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: data(next)}}); err != nil {
			t.Fatal(err)
		}
		next++
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		fi, err := os.Stat(spare)
		if err == nil && fi.Size() == opts.SegmentSize {
			if b, _ := os.ReadFile(spare); bytes.Count(b, []byte{0}) == len(b) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the leftover spare was not replaced by a zero-filled one: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// segments is how many segment files the log has.
func (l *Log) segments() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.segs)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// newestSize is how much of the newest segment holds records.
func (l *Log) newestSize() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.segs[len(l.segs)-1].size
}

// TestAFinishedSpareSurvivesARestart: a spare written in full before a
// restart is kept and used, not written again.
func TestAFinishedSpareSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	l := openLog(t, dir, opts)
	s := l.Shard(1)
	next := uint64(1)
	store := func() {
		t.Helper()
		if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: bytes.Repeat([]byte{1}, 4<<10)}}); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for !fileExists(filepath.Join(dir, spareName)) {
		store()
		time.Sleep(time.Millisecond)
	}
	l.Close()

	l = openLog(t, dir, opts)
	l.spare.mu.Lock()
	kept := l.spare.ready && !l.spare.filling
	l.spare.mu.Unlock()
	if !kept {
		t.Fatal("the finished spare was not kept across the restart")
	}
	s = l.Shard(1)
	// The log may have moved into an earlier spare before the restart, so
	// count from the segments it reopened with.
	for had := l.segments(); l.segments() == had; {
		store()
	}
	if got := l.Stats().SpareSegments; got != 1 {
		t.Fatalf("%d segments started from a spare after the restart, want 1", got)
	}
}

// TestAFailedWriteGivesTheSpareBack: when a write of the log fails (a full
// disk), a finished spare is deleted so its space goes to the log.
func TestAFailedWriteGivesTheSpareBack(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 64 << 10})
	s := l.Shard(1)
	next := uint64(1)
	for !fileExists(filepath.Join(dir, spareName)) {
		if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: bytes.Repeat([]byte{1}, 4<<10)}}); err != nil {
			t.Fatal(err)
		}
		next++
		time.Sleep(time.Millisecond)
	}
	writeFault = func(uint64) error { return syscall.ENOSPC }
	defer func() { writeFault = nil }()
	if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: []byte("x")}}); err == nil {
		t.Fatal("a write failed by the disk succeeded")
	}
	if fileExists(filepath.Join(dir, spareName)) {
		t.Fatal("the spare kept its space while the log could not write")
	}
}

// TestALogInUseLeavesItsPreallocatedSegmentForASpare: a new log's first
// segment is preallocated, slow to flush into; once the log has written
// spareEarly bytes to it a spare is written, and the log moves into it as
// soon as it is ready rather than when the first segment is full. A log
// that writes less starts no spare. Every entry reads back after a
// restart.
func TestALogInUseLeavesItsPreallocatedSegmentForASpare(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8 << 20}
	l := openLog(t, dir, opts)
	s := l.Shard(1)
	data := func(i uint64) []byte { return bytes.Repeat([]byte{byte(i)}, 4<<10) }
	next := uint64(1)
	store := func() {
		t.Helper()
		if err := s.StoreLogs([]*raft.Log{{Index: next, Term: 1, Data: data(next)}}); err != nil {
			t.Fatal(err)
		}
		next++
	}
	for l.newestSize()+5<<10 < spareEarly {
		store()
	}
	if fileExists(filepath.Join(dir, spareName)) || fileExists(filepath.Join(dir, spareTemp)) {
		t.Fatal("a spare was started before the log wrote spareEarly bytes")
	}
	store() // past spareEarly: the spare is started
	deadline := time.Now().Add(10 * time.Second)
	for !l.spare.isReady() {
		if time.Now().After(deadline) {
			t.Fatal("no spare was written for the preallocated segment")
		}
		time.Sleep(5 * time.Millisecond)
	}
	firstSize := l.newestSize()
	store() // the first write after the spare is ready goes into it
	if got := l.segments(); got != 2 {
		t.Fatalf("%d segments once the spare was ready, want 2", got)
	}
	if got := l.Stats().SpareSegments; got != 1 {
		t.Fatalf("%d segments started from a spare, want 1", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, segmentName(1))); err != nil || fi.Size() != firstSize {
		t.Fatalf("the first segment was not cut to its %d bytes of records: %v, %v", firstSize, fi, err)
	}
	// The segment started from the spare is kept until it is full.
	for i := 0; i < 512; i++ {
		store()
	}
	if got := l.segments(); got != 2 {
		t.Fatalf("%d segments after writing into the spare, want 2", got)
	}
	l.Close()

	l = openLog(t, dir, opts)
	for i := uint64(1); i < next; i++ {
		var e raft.Log
		if err := l.Shard(1).GetLog(i, &e); err != nil || !bytes.Equal(e.Data, data(i)) {
			t.Fatalf("entry %d after a restart: %v", i, err)
		}
	}
}
