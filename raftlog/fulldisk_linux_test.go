package raftlog

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hashicorp/raft"
)

// TestFullDiskRefusesWritesAndRecovers runs the log on a 1 MiB tmpfs. It
// needs the right to mount (root, as in CI and the containers).
func TestFullDiskRefusesWritesAndRecovers(t *testing.T) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	// Someone else's file takes a third of the volume.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 340<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(mnt, "log")
	opts := Options{SegmentSize: 128 << 10, MaxSegments: 8}
	l := openLog(t, dir, opts)
	s := l.Shard(0)
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	big := func(i uint64) *raft.Log {
		e := entry(0, i, 1)
		e.Data = append(e.Data, make([]byte, 4000)...)
		return e
	}
	fill := func() (acked uint64, err error) {
		last, _ := s.LastIndex()
		for i := last + 1; i < last+1000; i++ {
			if err = s.StoreLogs([]*raft.Log{big(i)}); err != nil {
				return acked, err
			}
			acked = i
		}
		t.Fatal("a 1 MiB filesystem never filled up")
		return
	}
	acked, werr := fill()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write on a full disk: %v, want ENOSPC", werr)
	}
	t.Logf("disk full after %d entries: %v", acked, werr)
	// A spare segment being written when the disk filled up is deleted to
	// leave the log its room, which can let a few more writes through
	// before the disk is full again.
	more, werr := fill()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("write on a full disk, again: %v, want ENOSPC", werr)
	}
	if more > 0 {
		t.Logf("%d more entries after the spare was deleted", more-acked)
		acked = more
	}
	// Refused again, and nothing acknowledged is harmed.
	if err := s.StoreLogs([]*raft.Log{big(acked + 1)}); err == nil {
		t.Fatal("write succeeded on a full disk")
	}
	requireRange(t, s, 1, acked, big)

	// The operator frees space: writes go through again.
	os.Remove(filler)
	for i := acked + 1; i <= acked+20; i++ {
		if err := s.StoreLogs([]*raft.Log{big(i)}); err != nil {
			t.Fatalf("write %d after space was freed: %v", i, err)
		}
	}
	acked += 20

	// Full again; this time raft's compaction after a snapshot frees the
	// space, although the disk has no room even to record it.
	acked, werr = fill()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Fatalf("second fill: %v, want ENOSPC", werr)
	}
	if err := s.DeleteRange(1, acked-5); err != nil {
		t.Fatalf("compaction on a full disk: %v", err)
	}
	for i := acked + 1; i <= acked+20; i++ {
		if err := s.StoreLogs([]*raft.Log{big(i)}); err != nil {
			t.Fatalf("write %d after compaction: %v", i, err)
		}
	}
	l.Close()
	// Whether or not the compaction record made it, every entry from
	// acked-4 on is there and nothing after the last acknowledged one.
	s = openLog(t, dir, opts).Shard(0)
	first, _ := s.FirstIndex()
	if first > acked-4 {
		t.Fatalf("first entry after reopen %d, want at most %d", first, acked-4)
	}
	requireRange(t, s, first, acked+20, big)
	if term, err := s.GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term after filling the disk twice and reopening: %d, %v; want 7", term, err)
	}
}
