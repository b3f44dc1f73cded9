package raftlog

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// segment is one file of the log. Only the newest segment is written to;
// older ones are read-only until every entry in them is dead, when the
// whole file is deleted.
type segment struct {
	seq  uint64
	path string
	f    *os.File
	size int64 // bytes of valid records
	// preallocated: the segment was created here in fallocated blocks,
	// which every flush into must first convert (spare.go), and so is
	// left for a spare as soon as one is ready. False for a segment
	// started from a spare, and for one found on disk.
	preallocated bool
}

const segmentSuffix = ".wal"

func segmentName(seq uint64) string { return fmt.Sprintf("%016x%s", seq, segmentSuffix) }

// listSegments returns the segment sequence numbers in dir, oldest first.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var seqs []uint64
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(name, segmentSuffix), 16, 64)
		if err != nil {
			continue
		}
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	return seqs, nil
}

// openSegment opens segment seq of dir, or creates it when create is set.
// A created segment is given prealloc bytes of disk up front, when the file
// system can: appends that stay within a file's size flush about a third
// faster than appends that grow it, because an fdatasync then has no new
// file size to commit. The space reads as zeros, which no record is.
func openSegment(dir string, seq uint64, create bool, prealloc int64) (*segment, error) {
	path := filepath.Join(dir, segmentName(seq))
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_EXCL
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	s := &segment{seq: seq, path: path, f: f}
	if create {
		if prealloc > 0 {
			// Best effort: without it the file grows as it is written.
			s.preallocated = preallocate(f, prealloc)
		}
		if err := syncDir(dir); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
	}
	return s, nil
}

// cut shrinks the file to the segment's records and makes that durable,
// before a newer segment is started: only the newest segment may have
// space after its records.
func (s *segment) cut() error {
	if err := s.f.Truncate(s.size); err != nil {
		return err
	}
	return fdatasync(s.f)
}

// syncDir makes a created or removed file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// scan calls fn for every valid record of the segment, in order, with its
// offset. It stops at the first record that is torn or fails its checksum
// and returns that offset as valid, and whether every byte from there to
// the end of the file is zero (space preallocated and never written); a
// caller that knows the segment is not the newest treats valid < file size
// as corruption.
func (s *segment) scan(fn func(off int64, r record) error) (valid int64, fileSize int64, zeroTail bool, err error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return 0, 0, false, err
	}
	var off int64
	for off < int64(len(data)) {
		r, perr := parseRecord(data[off:])
		if perr != nil {
			break
		}
		if err := fn(off, r); err != nil {
			return off, int64(len(data)), false, err
		}
		off += int64(r.size)
	}
	return off, int64(len(data)), allZero(data[off:]), nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
