package backup_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sessiond/sessiond/backup"
	"github.com/sessiond/sessiond/fsm"
)

// memSink keeps an FSM snapshot in memory.
type memSink struct{ bytes.Buffer }

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { return nil }
func (s *memSink) Close() error  { return nil }

// snapshotOf returns the snapshot stream of an FSM holding sessions
// messages, each with one message.
func snapshotOf(t *testing.T, sessions ...string) []byte {
	t.Helper()
	f := fsm.New(fsm.DefaultLimits)
	for i, id := range sessions {
		res := f.ApplyCommand(uint64(i+1), &fsm.Command{Op: fsm.OpAppendMessages, Session: id, At: 1,
			Messages: []fsm.NewMessage{{ID: "m1", Role: "user", Content: "hello " + id}}})
		if res.Status != fsm.StatusOK {
			t.Fatalf("append to %s: %+v", id, res)
		}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// archive writes an archive of one snapshot per shard.
func archive(t *testing.T, snaps ...[]byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := backup.NewWriter(&buf)
	for i, s := range snaps {
		if err := w.AddShard(uint32(i), uint64(100+i), 2, int64(len(s)), bytes.NewReader(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(backup.Manifest{Node: "n1", ShardCount: len(snaps), StartedAt: time.Unix(1, 0).UTC()}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAnArchiveReadsBackWithItsManifestAndSnapshots(t *testing.T) {
	snaps := [][]byte{snapshotOf(t, "a", "b"), snapshotOf(t), snapshotOf(t, "c")}
	dir := t.TempDir()
	a, err := backup.Read(bytes.NewReader(archive(t, snaps...)), dir)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	m := a.Manifest
	if m.Format != backup.Format || m.Version != backup.FormatVersion || m.ShardCount != 3 || m.Node != "n1" || len(m.Shards) != 3 {
		t.Fatalf("manifest = %+v", m)
	}
	for i, want := range snaps {
		s := m.Shards[i]
		if s.Shard != uint32(i) || s.Index != uint64(100+i) || s.Term != 2 || s.Size != int64(len(want)) || len(s.SHA256) != 64 {
			t.Fatalf("shard entry %d = %+v", i, s)
		}
		f, err := a.Open(uint32(i))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("shard %d snapshot differs from what was written", i)
		}
	}
	if got := a.Summary(0); got != (fsm.Summary{Sessions: 2, MaxVersion: 2}) {
		t.Fatalf("summary of shard 0 = %+v", got)
	}
	if m.Bytes() != int64(len(snaps[0])+len(snaps[1])+len(snaps[2])) {
		t.Fatalf("Bytes = %d", m.Bytes())
	}
	a.Remove()
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("Remove left %d files", len(left))
	}
}

// rewrite copies an archive, letting edit change each file (nil drops it).
func rewrite(t *testing.T, data []byte, edit func(name string, body []byte) []byte) []byte {
	t.Helper()
	return rewriteFiles(t, data, func(name string, body []byte) []tarFile {
		if body = edit(name, body); body == nil {
			return nil
		}
		return []tarFile{{name, body}}
	})
}

type tarFile struct {
	name string
	body []byte
}

// rewriteFiles copies an archive, writing the files edit returns for each.
func rewriteFiles(t *testing.T, data []byte, edit func(name string, body []byte) []tarFile) []byte {
	t.Helper()
	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		for _, f := range edit(hdr.Name, body) {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Size: int64(len(f.body)), Mode: 0o600}); err != nil {
				t.Fatal(err)
			}
			tw.Write(f.body)
		}
	}
	tw.Close()
	return out.Bytes()
}

func TestADamagedOrIncompleteArchiveIsRefusedAndLeavesNoFiles(t *testing.T) {
	good := archive(t, snapshotOf(t, "a"), snapshotOf(t, "b"))
	flip := func(b []byte, i int) []byte { c := append([]byte(nil), b...); c[i] ^= 0x40; return c }
	cases := map[string][]byte{
		"a flipped byte in a session record": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ShardFile(1) {
				return flip(b, len(b)-4)
			}
			return b
		}),
		"a damaged snapshot header": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ShardFile(0) {
				return flip(b, 0)
			}
			return b
		}),
		"a missing shard": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ShardFile(1) {
				return nil
			}
			return b
		}),
		"no manifest": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ManifestName {
				return nil
			}
			return b
		}),
		"a manifest of another version": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ManifestName {
				return bytes.Replace(b, []byte(`"version": 1`), []byte(`"version": 9`), 1)
			}
			return b
		}),
		"a manifest with an index below the snapshot's versions": rewrite(t, archive(t, snapshotOf(t, "a", "b", "c")), func(name string, b []byte) []byte {
			if name == backup.ManifestName {
				return bytes.Replace(b, []byte(`"index": 100`), []byte(`"index": 2`), 1)
			}
			return b
		}),
		"a manifest with a shard count that does not match": rewrite(t, good, func(name string, b []byte) []byte {
			if name == backup.ManifestName {
				return bytes.Replace(b, []byte(`"shardCount": 2`), []byte(`"shardCount": 3`), 1)
			}
			return b
		}),
		"cut short":        good[:len(good)/2],
		"not a tar at all": []byte(strings.Repeat("sessiond", 200)),
	}
	cases["an extra file"] = withFile(t, good, "shards/../../etc/passwd", []byte("x"))
	cases["a shard twice"] = withFile(t, good, backup.ShardFile(0), snapshotOf(t, "a"))
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			_, err := backup.Read(bytes.NewReader(data), dir)
			if !errors.Is(err, backup.ErrInvalid) {
				t.Fatalf("Read = %v, want ErrInvalid", err)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Fatalf("a refused archive left %d files", len(left))
			}
		})
	}
}

// withFile adds a file before an archive's manifest.
func withFile(t *testing.T, data []byte, name string, body []byte) []byte {
	t.Helper()
	return rewriteFiles(t, data, func(n string, b []byte) []tarFile {
		if n == backup.ManifestName {
			return []tarFile{{name, body}, {n, b}}
		}
		return []tarFile{{n, b}}
	})
}

func TestSpoolSnapshotChecksSizeSumAndDecoding(t *testing.T) {
	snap := snapshotOf(t, "a")
	a, err := backup.Read(bytes.NewReader(archive(t, snap)), "")
	if err != nil {
		t.Fatal(err)
	}
	sum := a.Manifest.Shards[0].SHA256
	dir := t.TempDir()
	p, summary, err := backup.SpoolSnapshot(bytes.NewReader(snap), int64(len(snap)), sum, 100, dir)
	if err != nil {
		t.Fatalf("spool: %v", err)
	}
	if summary != (fsm.Summary{Sessions: 1, MaxVersion: 1}) {
		t.Fatalf("summary = %+v", summary)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, snap) {
		t.Fatalf("spooled file differs")
	}
	os.Remove(p)
	for name, in := range map[string][]byte{"short": snap[:len(snap)-1], "changed": append(snap[:len(snap)-1:len(snap)-1], snap[len(snap)-1]^1)} {
		if _, _, err := backup.SpoolSnapshot(bytes.NewReader(in), int64(len(snap)), sum, 100, dir); !errors.Is(err, backup.ErrInvalid) {
			t.Fatalf("%s snapshot: %v, want ErrInvalid", name, err)
		}
	}
	// The snapshot holds version 1: it cannot have been taken before
	// index 1, and index 0 or one beyond MaxIndex is no raft index.
	for _, index := range []uint64{0, backup.MaxIndex + 1} {
		if _, _, err := backup.SpoolSnapshot(bytes.NewReader(snap), int64(len(snap)), sum, index, dir); !errors.Is(err, backup.ErrInvalid) {
			t.Fatalf("snapshot at index %d: %v, want ErrInvalid", index, err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("refused snapshots left %d files", len(left))
	}
}
