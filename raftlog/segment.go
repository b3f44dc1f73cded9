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

func openSegment(dir string, seq uint64, create bool) (*segment, error) {
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
		if err := syncDir(dir); err != nil {
			f.Close()
			os.Remove(path)
			return nil, err
		}
	}
	return s, nil
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
// and returns that offset as valid; a caller that knows the segment is not
// the newest treats valid < file size as corruption.
func (s *segment) scan(fn func(off int64, r record) error) (valid int64, fileSize int64, err error) {
	data, err := os.ReadFile(s.path)
	if err != nil {
		return 0, 0, err
	}
	var off int64
	for off < int64(len(data)) {
		r, perr := parseRecord(data[off:])
		if perr != nil {
			break
		}
		if err := fn(off, r); err != nil {
			return off, int64(len(data)), err
		}
		off += int64(r.size)
	}
	return off, int64(len(data)), nil
}
