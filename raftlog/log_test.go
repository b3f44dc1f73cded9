package raftlog

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestEntriesAndStableValuesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	for shard := uint32(0); shard < 4; shard++ {
		s := l.Shard(shard)
		e := entries(shard, 1, 50, 2)
		e[7].Extensions = []byte("ext")
		e[8].AppendedAt = time.Unix(1700000000, 123456789)
		if err := s.StoreLogs(e); err != nil {
			t.Fatal(err)
		}
		if err := s.SetUint64([]byte("CurrentTerm"), uint64(10+shard)); err != nil {
			t.Fatal(err)
		}
		if err := s.Set([]byte("LastVoteCand"), []byte("node2")); err != nil {
			t.Fatal(err)
		}
	}
	want := func(shard uint32) func(uint64) *raft.Log {
		return func(i uint64) *raft.Log {
			e := entry(shard, i, 2)
			if i == 8 {
				e.Extensions = []byte("ext")
			}
			if i == 9 {
				e.AppendedAt = time.Unix(1700000000, 123456789)
			}
			return e
		}
	}
	check := func(l *Log) {
		for shard := uint32(0); shard < 4; shard++ {
			s := l.Shard(shard)
			requireRange(t, s, 1, 50, want(shard))
			if v, _ := s.GetUint64([]byte("CurrentTerm")); v != uint64(10+shard) {
				t.Fatalf("shard %d term %d", shard, v)
			}
			if v, _ := s.Get([]byte("LastVoteCand")); string(v) != "node2" {
				t.Fatalf("shard %d vote %q", shard, v)
			}
		}
		if v, err := l.Shard(9).GetUint64([]byte("CurrentTerm")); v != 0 || err != nil {
			t.Fatalf("unknown shard: %d, %v", v, err)
		}
	}
	check(l)
	l.Close()
	check(openLog(t, dir, Options{}))
}

func TestConflictingSuffixIsReplacedAndPrefixCompacted(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	s := l.Shard(3)
	if err := s.StoreLogs(entries(3, 1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	// A new leader overwrites 15.. with its own term, as a follower would
	// after DeleteRange(15, 20).
	if err := s.DeleteRange(15, 20); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(3, 15, 25, 2)); err != nil {
		t.Fatal(err)
	}
	// Conflict without a DeleteRange first also replaces the suffix.
	if err := s.StoreLogs(entries(3, 24, 24, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(1, 10); err != nil { // compaction after a snapshot
		t.Fatal(err)
	}
	want := func(i uint64) *raft.Log {
		switch {
		case i < 15:
			return entry(3, i, 1)
		case i < 24:
			return entry(3, i, 2)
		}
		return entry(3, i, 3)
	}
	requireRange(t, s, 11, 24, want)
	if err := s.DeleteRange(12, 13); err == nil {
		t.Fatal("deleting from the middle of the log succeeded")
	}
	l.Close()
	requireRange(t, openLog(t, dir, Options{}).Shard(3), 11, 24, want)
}

func TestAppendAfterGapStartsFreshLog(t *testing.T) {
	// After a snapshot is installed a follower appends past a gap; the
	// entries before the gap are covered by the snapshot.
	l := openLog(t, t.TempDir(), Options{})
	s := l.Shard(1)
	if err := s.StoreLogs(entries(1, 1, 5, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs(entries(1, 100, 102, 4)); err != nil {
		t.Fatal(err)
	}
	requireRange(t, s, 100, 102, func(i uint64) *raft.Log { return entry(1, i, 4) })
	if err := s.StoreLogs([]*raft.Log{entry(1, 1, 1), entry(1, 3, 1)}); err == nil {
		t.Fatal("non-consecutive entries accepted")
	}
}

func TestConcurrentWritesOfAllShardsShareCommits(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	const shards, perShard = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, shards)
	for sh := uint32(0); sh < shards; sh++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := l.Shard(sh)
			for i := uint64(1); i <= perShard; i++ {
				if err := s.StoreLogs(entries(sh, i, i, 1)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := l.Stats()
	batches, requests := st.Batches, st.Requests
	if requests != shards*perShard {
		t.Fatalf("%d requests, want %d", requests, shards*perShard)
	}
	// With 16 writers each waiting for its own commit, a batch that
	// carries only one request would mean no group commit at all.
	if batches >= requests {
		t.Fatalf("%d commits for %d requests: writes were not grouped", batches, requests)
	}
	t.Logf("%d requests in %d commits (%.1f per fdatasync)", requests, batches, float64(requests)/float64(batches))
	l.Close()
	l = openLog(t, dir, Options{})
	for sh := uint32(0); sh < shards; sh++ {
		requireRange(t, l.Shard(sh), 1, perShard, func(i uint64) *raft.Log { return entry(sh, i, 1) })
	}
}

func TestDroppedShardIsGoneAndOthersUntouched(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 4096})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	written := make([]uint64, 3)
	for sh := uint32(0); sh < 3; sh++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := uint64(1); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := l.Shard(sh).StoreLogs(entries(sh, i, i, 1)); err != nil {
					t.Error(err)
					return
				}
				written[sh] = i
			}
		}()
	}
	victim := l.Shard(7)
	if err := victim.StoreLogs(entries(7, 1, 100, 1)); err != nil {
		t.Fatal(err)
	}
	victim.SetUint64([]byte("CurrentTerm"), 5)
	time.Sleep(20 * time.Millisecond)
	if err := l.DropShard(7); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	check := func(l *Log) {
		requireRange(t, l.Shard(7), 0, 0, nil)
		if v, _ := l.Shard(7).GetUint64([]byte("CurrentTerm")); v != 0 {
			t.Fatalf("dropped shard kept its term %d", v)
		}
		for sh := uint32(0); sh < 3; sh++ {
			requireRange(t, l.Shard(sh), 1, written[sh], func(i uint64) *raft.Log { return entry(sh, i, 1) })
		}
	}
	check(l)
	l.Close()
	l = openLog(t, dir, Options{SegmentSize: 4096})
	check(l)
	// The shard can come back, as when a replica is added here again.
	if err := l.Shard(7).StoreLogs(entries(7, 500, 510, 9)); err != nil {
		t.Fatal(err)
	}
	requireRange(t, l.Shard(7), 500, 510, func(i uint64) *raft.Log { return entry(7, i, 9) })
}

func TestTornTailIsTruncatedAndWritesContinue(t *testing.T) {
	for _, cut := range []int{1, headerSize - 1, headerSize + 3, -1} {
		dir := t.TempDir()
		l := openLog(t, dir, Options{})
		s := l.Shard(0)
		if err := s.StoreLogs(entries(0, 1, 10, 1)); err != nil {
			t.Fatal(err)
		}
		l.Close()
		path := filepath.Join(dir, segmentName(1))
		data := readRecords(t, path)
		// The last write never finished: part of another record follows,
		// in the segment's preallocated space (odd cuts) or at the end of a
		// segment that grows as it is written (even cuts).
		extra := appendEntry(nil, kindEntry, 0, entry(0, 11, 1))
		if cut < 0 {
			extra[len(extra)-1] ^= 0xff // complete but damaged
		} else {
			extra = extra[:cut]
		}
		if cut%2 != 0 {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(extra, int64(len(data))); err != nil {
				t.Fatal(err)
			}
			f.Close()
		} else if err := os.WriteFile(path, append(data, extra...), 0o600); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, Options{})
		s = l.Shard(0)
		requireRange(t, s, 1, 10, func(i uint64) *raft.Log { return entry(0, i, 1) })
		if fi, _ := os.Stat(path); fi.Size() != int64(len(data)) {
			t.Fatalf("cut %d: segment is %d bytes after open, want %d", cut, fi.Size(), len(data))
		}
		if err := s.StoreLogs(entries(0, 11, 12, 1)); err != nil {
			t.Fatal(err)
		}
		l.Close()
		requireRange(t, openLog(t, dir, Options{}).Shard(0), 1, 12, func(i uint64) *raft.Log { return entry(0, i, 1) })
	}
}

func TestDamageBeforeTheNewestSegmentFailsOpen(t *testing.T) {
	dir := t.TempDir()
	// Many small segments, and no rewrite that would move the entries out
	// of the first one and delete it (segments that start from a spare are
	// cut early, so how many there are depends on timing).
	l := openLog(t, dir, Options{SegmentSize: 1024, MaxSegments: 1000})
	for i := uint64(1); i <= 100; i++ {
		if err := l.Shard(0).StoreLogs(entries(0, i, i, 1)); err != nil {
			t.Fatal(err)
		}
	}
	if l.Segments() < 2 {
		t.Fatalf("only %d segments", l.Segments())
	}
	l.Close()
	path := filepath.Join(dir, segmentName(1))
	data, _ := os.ReadFile(path)
	data[headerSize+5] ^= 0x01
	os.WriteFile(path, data, 0o600)
	if l, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
		l.Close()
		t.Fatal("open succeeded over a damaged older segment")
	} else if !errors.Is(err, errCorrupt) {
		t.Fatalf("open: %v, want a corruption error", err)
	}
}

func TestOperationsAfterCloseFail(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	l.Close()
	if err := l.Shard(0).StoreLogs(entries(0, 1, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("store after close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestSecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	openLog(t, dir, Options{})
	if l, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
		l.Close()
		t.Fatal("a second Log opened the same directory")
	}
}

func TestSpaceIsReclaimedAfterCompactionAndFromIdleShards(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8 << 10, MaxSegments: 4}
	l := openLog(t, dir, opts)
	// An idle shard writes a few entries once and never compacts: only a
	// rewrite can free the segment they are in.
	idle := l.Shard(99)
	if err := idle.StoreLogs(entries(99, 1, 3, 1)); err != nil {
		t.Fatal(err)
	}
	busy := l.Shard(1)
	var last uint64
	for round := 0; round < 200; round++ {
		if err := busy.StoreLogs(entries(1, last+1, last+10, 1)); err != nil {
			t.Fatal(err)
		}
		last += 10
		if last > 50 { // a snapshot every so often keeps 50 trailing entries
			first, _ := busy.FirstIndex()
			if first < last-50 {
				if err := busy.DeleteRange(first, last-50); err != nil {
					t.Fatal(err)
				}
			}
		}
		if n := l.Segments(); n > opts.MaxSegments+1 {
			t.Fatalf("round %d: %d segments kept", round, n)
		}
	}
	files, _ := listSegments(dir)
	if len(files) > opts.MaxSegments+1 {
		t.Fatalf("%d segment files on disk", len(files))
	}
	check := func(l *Log) {
		requireRange(t, l.Shard(99), 1, 3, func(i uint64) *raft.Log { return entry(99, i, 1) })
		requireRange(t, l.Shard(1), last-50+1, last, func(i uint64) *raft.Log { return entry(1, i, 1) })
	}
	check(l)
	l.Close()
	check(openLog(t, dir, opts))
}

func TestTornRewriteKeepsTheOriginalEntries(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	s := l.Shard(2)
	if err := s.StoreLogs(entries(2, 1, 20, 1)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	// A rewrite of 1..20 that was cut off before its end marker.
	path := filepath.Join(dir, segmentName(1))
	data := readRecords(t, path)
	var moved []byte
	for _, e := range entries(2, 1, 20, 1) {
		moved = appendEntry(moved, kindMoved, 2, e)
	}
	os.WriteFile(path, append(data, moved...), 0o600)
	l = openLog(t, dir, Options{})
	requireRange(t, l.Shard(2), 1, 20, func(i uint64) *raft.Log { return entry(2, i, 1) })
	// The unfinished rewrite is cut away, so a later rewrite's end marker
	// cannot adopt its records.
	if fi, _ := os.Stat(path); fi.Size() != int64(len(data)) {
		t.Fatalf("segment is %d bytes, want %d", fi.Size(), len(data))
	}
	var got raft.Log
	if err := l.Shard(2).GetLog(5, &got); err != nil || !bytes.Equal(got.Data, entry(2, 5, 1).Data) {
		t.Fatalf("entry 5: %v %q", err, got.Data)
	}
}

// readRecords is the part of a segment file that holds records, without
// the preallocated space after them.
func readRecords(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var off int
	for off < len(data) {
		r, err := parseRecord(data[off:])
		if err != nil {
			break
		}
		off += r.size
	}
	return data[:off]
}

// Segments get their space when they are made, so appends do not grow the
// file; a restart keeps the newest segment's unwritten space without
// calling it a torn write, and a segment that is full is cut to its records
// before the next starts, so older segments never end in zeros.
func TestSegmentsArePreallocatedAndCutWhenFull(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 64 << 10}
	var logged bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logged, nil))
	l := openLog(t, dir, opts)
	s := l.Shard(1)
	if err := s.StoreLogs(entries(1, 1, 10, 1)); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, segmentName(1))
	if fi, err := os.Stat(first); err != nil || fi.Size() != opts.SegmentSize {
		t.Fatalf("new segment: %v, %v; want %d bytes preallocated", fi.Size(), err, opts.SegmentSize)
	}
	l.Close()

	l = openLog(t, dir, opts)
	s = l.Shard(1)
	if strings.Contains(logged.String(), "truncating") {
		t.Fatalf("a restart took preallocated space for a torn write:\n%s", logged.String())
	}
	if fi, _ := os.Stat(first); fi.Size() != opts.SegmentSize {
		t.Fatalf("the newest segment lost its space on restart: %d bytes", fi.Size())
	}
	big := make([]*raft.Log, 0, 40)
	for i := uint64(11); i < 51; i++ {
		big = append(big, &raft.Log{Index: i, Term: 1, Data: bytes.Repeat([]byte{byte(i)}, 4<<10)})
	}
	for _, e := range big {
		if err := s.StoreLogs([]*raft.Log{e}); err != nil {
			t.Fatal(err)
		}
	}
	seqs, _ := listSegments(dir)
	if len(seqs) < 2 {
		t.Fatalf("%d segments after %d KiB, want a second one", len(seqs), 40*4)
	}
	for _, seq := range seqs[:len(seqs)-1] {
		path := filepath.Join(dir, segmentName(seq))
		fi, _ := os.Stat(path)
		if recs := readRecords(t, path); int64(len(recs)) != fi.Size() {
			t.Fatalf("full segment %d is %d bytes for %d bytes of records", seq, fi.Size(), len(recs))
		}
	}
	l.Close()
	l = openLog(t, dir, opts)
	requireRange(t, l.Shard(1), 1, 50, func(i uint64) *raft.Log {
		if i <= 10 {
			return entry(1, i, 1)
		}
		return big[i-11]
	})
}

// An older segment that ends in zeros did not end that way by
// preallocation, which full segments give back: it is refused as damage.
func TestAnOlderSegmentEndingInZerosIsDamage(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 8 << 10}
	l := openLog(t, dir, opts)
	for i := uint64(1); i <= 8; i++ {
		if err := l.Shard(1).StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: bytes.Repeat([]byte{1}, 2<<10)}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	path := filepath.Join(dir, segmentName(1))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 100))
	f.Close()
	if _, err := Open(dir, opts); !errors.Is(err, errCorrupt) {
		t.Fatalf("open with zeros after an older segment's records: %v, want errCorrupt", err)
	}
}

// A new segment gets the stable values with its first write. When that
// write fails (a full disk) and a compaction leaves the older segments
// without live entries, the segment before the newest still holds the only
// whole copy of the term and vote: it must not be deleted.
func TestTermSurvivesAFailedFirstWriteToANewSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 16 << 10}
	l := openLog(t, dir, opts)
	s := l.Shard(3)
	if err := s.SetUint64([]byte("CurrentTerm"), 7); err != nil {
		t.Fatal(err)
	}
	var i uint64
	for i = 1; ; i++ {
		if err := s.StoreLogs([]*raft.Log{{Index: i, Term: 1, Data: make([]byte, 3<<10)}}); err != nil {
			t.Fatal(err)
		}
		if seqs, _ := listSegments(dir); len(seqs) > 1 {
			break
		}
	}
	// Every write to the next segment fails from now on.
	seqs, _ := listSegments(dir)
	newest := seqs[len(seqs)-1]
	writeFault = func(seq uint64) error {
		if seq > newest {
			return syscall.ENOSPC
		}
		return nil
	}
	t.Cleanup(func() { writeFault = nil })
	for j := i + 1; ; j++ {
		err := s.StoreLogs([]*raft.Log{{Index: j, Term: 1, Data: make([]byte, 3<<10)}})
		if err != nil {
			i = j - 1
			break
		}
	}
	// A snapshot compacts everything; the record cannot be written, but
	// the compaction takes effect to free space.
	if err := s.DeleteRange(1, i); err != nil {
		t.Fatal(err)
	}
	l.Close()
	writeFault = nil
	l = openLog(t, dir, opts)
	if term, err := l.Shard(3).GetUint64([]byte("CurrentTerm")); err != nil || term != 7 {
		t.Fatalf("term after the failed first write and a compaction: %d, %v; want 7", term, err)
	}
}
