package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/sessiond/sessiond/fsm"
)

// Archive is an archive Read has verified. Its snapshots are in files of
// their own when Read was given a directory.
type Archive struct {
	Manifest  Manifest
	files     map[uint32]string
	summaries map[uint32]fsm.Summary
}

// Summary summarizes shard n's snapshot: its sessions and highest version.
func (a *Archive) Summary(n uint32) fsm.Summary { return a.summaries[n] }

// Open opens shard n's snapshot; it needs an archive read into a directory.
func (a *Archive) Open(n uint32) (*os.File, error) {
	p, ok := a.files[n]
	if !ok {
		return nil, fmt.Errorf("backup: shard %d was not kept", n)
	}
	return os.Open(p)
}

// Remove deletes the snapshot files Read kept.
func (a *Archive) Remove() {
	for _, p := range a.files {
		os.Remove(p)
	}
}

// entry is what Read learned of one snapshot file while reading it.
type entry struct {
	size int64
	sum  string
	path string
	// applied is the snapshot's own applied index, which with its
	// sessions' versions must not exceed the raft index it was taken at.
	applied uint64
	summary fsm.Summary
}

// Read reads a whole archive from r and verifies it: a manifest of this
// format and version, one snapshot for each of its shards and nothing
// else, each of the size and SHA-256 the manifest records and each a
// snapshot that decodes. With dir set it keeps the snapshots in files
// there (Archive.Open); on any error it removes them. Every error but a
// failure to read r or write dir wraps ErrInvalid.
func Read(r io.Reader, dir string) (*Archive, error) {
	a := &Archive{files: map[uint32]string{}, summaries: map[uint32]fsm.Summary{}}
	if err := a.read(r, dir); err != nil {
		a.Remove()
		return nil, err
	}
	return a, nil
}

func (a *Archive) read(r io.Reader, dir string) error {
	entries := map[string]*entry{}
	var manifest []byte
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
				return invalid("not a complete tar stream: %v", err)
			}
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			return invalid("%q is not a regular file", hdr.Name)
		}
		if _, dup := entries[hdr.Name]; dup || (hdr.Name == ManifestName && manifest != nil) {
			return invalid("%q appears twice", hdr.Name)
		}
		if hdr.Name == ManifestName {
			if hdr.Size > maxManifestBytes {
				return invalid("manifest of %d bytes", hdr.Size)
			}
			if manifest, err = io.ReadAll(tr); err != nil {
				return truncated(err)
			}
			continue
		}
		var n uint32
		if _, err := fmt.Sscanf(hdr.Name, "shards/%d.snap", &n); err != nil || hdr.Name != ShardFile(n) {
			return invalid("unexpected file %q", hdr.Name)
		}
		e, err := readSnapshot(tr, hdr.Name, dir)
		if e != nil && e.path != "" {
			a.files[n] = e.path
		}
		if err != nil {
			return err
		}
		entries[hdr.Name] = e
		a.summaries[n] = e.summary
	}
	if manifest == nil {
		return invalid("no %s", ManifestName)
	}
	if err := json.Unmarshal(manifest, &a.Manifest); err != nil {
		return invalid("manifest: %v", err)
	}
	if err := a.Manifest.check(entries); err != nil {
		return err
	}
	return nil
}

// readSnapshot reads one snapshot file, hashing it, decoding it and, with
// dir set, keeping it in a file there.
func readSnapshot(r io.Reader, name, dir string) (*entry, error) {
	e := &entry{}
	h := sha256.New()
	var sink io.Writer = h
	if dir != "" {
		f, err := os.CreateTemp(dir, "restore-*.snap")
		if err != nil {
			return nil, err
		}
		defer f.Close()
		e.path = f.Name()
		sink = io.MultiWriter(h, f)
	}
	counted := &countingWriter{w: sink}
	tee := io.TeeReader(r, counted)
	f := fsm.New(fsm.DefaultLimits)
	if err := f.Restore(io.NopCloser(tee)); err != nil {
		return e, invalid("%s: %v", name, err)
	}
	e.summary = f.Summary()
	e.applied = max(f.AppliedIndex(), e.summary.MaxVersion)
	if _, err := io.Copy(counted, r); err != nil { // bytes after the end the decoder saw
		return e, truncated(err)
	}
	e.size, e.sum = counted.n, hex.EncodeToString(h.Sum(nil))
	return e, nil
}

// check compares the manifest with the snapshot files read.
func (m *Manifest) check(entries map[string]*entry) error {
	if m.Format != Format || m.Version != FormatVersion {
		return invalid("format %q version %d; this sessiond reads %q version %d", m.Format, m.Version, Format, FormatVersion)
	}
	if m.ShardCount < 1 || m.ShardCount > MaxShards || len(m.Shards) != m.ShardCount {
		return invalid("manifest lists %d shards of a cluster of %d", len(m.Shards), m.ShardCount)
	}
	seen := make([]bool, m.ShardCount)
	for _, s := range m.Shards {
		if int(s.Shard) >= m.ShardCount || seen[s.Shard] || s.File != ShardFile(s.Shard) {
			return invalid("manifest entry for shard %d (%q) is out of range, repeated or misnamed", s.Shard, s.File)
		}
		seen[s.Shard] = true
		e, ok := entries[s.File]
		switch {
		case !ok:
			return invalid("shard %d: %s is missing", s.Shard, s.File)
		case e.size != s.Size:
			return invalid("shard %d: %s holds %d bytes, the manifest says %d", s.Shard, s.File, e.size, s.Size)
		case e.sum != s.SHA256:
			return invalid("shard %d: %s has SHA-256 %s, the manifest says %s", s.Shard, s.File, e.sum, s.SHA256)
		}
		if err := checkIndex(s.Index, e.applied); err != nil {
			return invalid("shard %d: %v", s.Shard, err)
		}
	}
	if len(entries) != m.ShardCount {
		return invalid("the archive holds %d snapshot files for %d shards", len(entries), m.ShardCount)
	}
	return nil
}

// MaxIndex bounds the raft index of a snapshot a reader accepts, far above
// any a cluster reaches, so that raft's index after a restore cannot wrap.
const MaxIndex = 1 << 62

// checkIndex checks a snapshot's raft index against what it holds: raft
// takes a snapshot after applying everything in it, so its applied index
// and every version in it are at most the snapshot's index. A larger one
// would make later writes' versions go backwards.
func checkIndex(index, applied uint64) error {
	if index == 0 || index > MaxIndex {
		return fmt.Errorf("raft index %d is out of range", index)
	}
	if applied > index {
		return fmt.Errorf("holds index or version %d, after the raft index %d it was taken at", applied, index)
	}
	return nil
}

func truncated(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("the archive ends inside a file")
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// SpoolSnapshot copies one shard's snapshot, size bytes from r, into a new
// file in dir and checks that it has the SHA-256 sum (hex), decodes, and
// holds nothing after raft index index. It returns the file's path, which
// the caller removes, and the snapshot's summary. A mismatch wraps
// ErrInvalid and leaves no file.
func SpoolSnapshot(r io.Reader, size int64, sum string, index uint64, dir string) (string, fsm.Summary, error) {
	e, err := readSnapshot(io.LimitReader(r, size), "snapshot", dir)
	if err == nil && (e.size != size || e.sum != sum) {
		err = invalid("snapshot of %d bytes with SHA-256 %s, expected %d bytes with %s", e.size, e.sum, size, sum)
	}
	if err == nil {
		if ierr := checkIndex(index, e.applied); ierr != nil {
			err = invalid("%v", ierr)
		}
	}
	if err != nil {
		if e != nil && e.path != "" {
			os.Remove(e.path)
		}
		return "", fsm.Summary{}, err
	}
	return filepath.Clean(e.path), e.summary, nil
}
