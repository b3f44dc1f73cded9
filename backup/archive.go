// Package backup writes and reads sessiond's backup archives.
//
// An archive is a tar stream: one file per shard, shards/NNN.snap, holding
// that shard's snapshot stream (package fsm's snapshot format), and last
// manifest.json, which names the cluster, the shard count, when the backup
// began and ended, and for every shard the raft index and term its snapshot
// was taken at, its size and its SHA-256. The manifest comes last so that a
// node can stream an archive while it takes the snapshots; a reader verifies
// the whole archive before anything uses it. Standard tools can unpack one
// (tar -xf) and check it (sha256sum).
//
// Writer and Archive are not safe for concurrent use.
package backup

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Format names sessiond backups in the manifest; FormatVersion is the
// version this package writes and the only one it reads.
const (
	Format        = "sessiond-backup"
	FormatVersion = 1
	ManifestName  = "manifest.json"
	// maxManifestBytes bounds the manifest a reader accepts: a few hundred
	// bytes per shard.
	maxManifestBytes = 16 << 20
	// MaxShards bounds the shard count a reader accepts.
	MaxShards = 4096
)

// ErrInvalid is wrapped by every error that says an archive is not a
// complete, intact sessiond backup.
var ErrInvalid = errors.New("invalid backup archive")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Manifest describes an archive. At linearizable Consistency every write
// acknowledged before StartedAt is in it, and writes acknowledged between
// StartedAt and FinishedAt may be, each shard on its own (see the README);
// at stale each shard is what the replica that took it had applied.
type Manifest struct {
	Format      string    `json:"format"`
	Version     int       `json:"version"`
	ClusterID   string    `json:"clusterId,omitempty"`
	Node        string    `json:"node"`
	ShardCount  int       `json:"shardCount"`
	Consistency string    `json:"consistency"`
	StartedAt   time.Time `json:"startedAt"`
	FinishedAt  time.Time `json:"finishedAt"`
	Shards      []Shard   `json:"shards"`
}

// Shard is one shard's snapshot in an archive.
type Shard struct {
	Shard  uint32 `json:"shard"`
	File   string `json:"file"`
	Index  uint64 `json:"index"`
	Term   uint64 `json:"term"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Bytes is the size of every shard's snapshot together.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Size
	}
	return n
}

// ShardFile is the name of shard n's snapshot in an archive.
func ShardFile(n uint32) string { return fmt.Sprintf("shards/%03d.snap", n) }

// Writer writes an archive: AddShard for every shard, then Close.
type Writer struct {
	tw     *tar.Writer
	shards []Shard
	now    func() time.Time
}

// NewWriter starts an archive on w.
func NewWriter(w io.Writer) *Writer { return &Writer{tw: tar.NewWriter(w), now: time.Now} }

// AddShard writes shard n's snapshot, exactly size bytes read from r, taken
// at raft index and term. A short r is an error and leaves the archive
// incomplete.
func (w *Writer) AddShard(n uint32, index, term uint64, size int64, r io.Reader) error {
	name := ShardFile(n)
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o600, ModTime: w.now()}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	h := sha256.New()
	got, err := io.Copy(io.MultiWriter(w.tw, h), io.LimitReader(r, size))
	if err != nil {
		return fmt.Errorf("shard %d: %w", n, err)
	}
	if got != size {
		return fmt.Errorf("shard %d: snapshot ended after %d of %d bytes", n, got, size)
	}
	w.shards = append(w.shards, Shard{Shard: n, File: name, Index: index, Term: term, Size: size,
		SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// Close writes the manifest, m with the format and the shards added, and
// ends the archive. It does not close the underlying writer.
func (w *Writer) Close(m Manifest) error {
	m.Format, m.Version, m.Shards = Format, FormatVersion, w.shards
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: ManifestName, Size: int64(len(b)), Mode: 0o600, ModTime: w.now()}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return err
	}
	if _, err := w.tw.Write(b); err != nil {
		return err
	}
	return w.tw.Close()
}
