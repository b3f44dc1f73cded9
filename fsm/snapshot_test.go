package fsm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/snapshot_v1.hex")

// populated returns an FSM with a few sessions of every shape, written with
// Apply so the applied index is set.
func populated(t testing.TB) *FSM {
	t.Helper()
	return populate(t, append(baseHistory(),
		Command{Op: OpSetExpiry, Session: "b", TTL: 86_400_000},
		Command{Op: OpSetExpiry, Session: "e", Expires: 1_800_000_000_000},
		Command{Op: OpSetAlarm, Session: "a", Name: "remind", Due: 5_000, Value: []byte(`{"say":"hi"}`)},
		Command{Op: OpSetAlarm, Session: "a", Name: "later", Due: 1_900_000_000_000},
		Command{Op: OpFireAlarm, Session: "a", Name: "remind", Set: 11},
		Command{Op: OpAlarmDelivered, Session: "a", Name: "remind", Set: 13}))
}

// populatedBefore3 is the state the golden snapshots of formats 1 and 2
// were written from: no expiries, which those formats cannot hold.
func populatedBefore3(t testing.TB) *FSM {
	t.Helper()
	return populate(t, baseHistory())
}

func baseHistory() []Command {
	return []Command{
		appendCmd("a", msg("m1", "user", "hi", `{"x":1}`), msg("m2", "assistant", "")),
		putCmd("a", "f", "[1]"),
		mergeCmd("b", "z", "true", "y", `{"k":"v"}`),
		appendCmd("c", msg("m1", "user", strings.Repeat("é", 100))),
		appendCmd("d", msg("gone", "user", "x")),
		deleteCmd("d"),
		putCmd("e", "only", `"field"`),
		appendCmd("a", msg("m3", "user", "again")),
	}
}

func populate(t testing.TB, history []Command) *FSM {
	t.Helper()
	f := New(DefaultLimits)
	for i, c := range history {
		c.At = int64(1000 * (i + 1))
		if r := applyLog(t, f, uint64(i+1), c); r.Status != StatusOK {
			t.Fatalf("populate %d: %v %s", i, r.Status, r.Detail)
		}
	}
	return f
}

// sameState compares two FSMs session by session, including the unexported
// parts (messages, fields, field bytes) and the message-id index.
func sameState(t testing.TB, got, want *FSM) {
	t.Helper()
	g, w := sessions(got), sessions(want)
	if len(g) != len(w) {
		t.Fatalf("%d sessions, want %d", len(g), len(w))
	}
	for i := range w {
		a, b := *g[i], *w[i]
		// Messages compare by content, not by how their bytes are laid out.
		am, bm := a.Messages(), b.Messages()
		a.messages, b.messages = messageLog{}, messageLog{}
		if !reflect.DeepEqual(a, b) || !reflect.DeepEqual(am, bm) {
			t.Fatalf("session %q:\n got %+v %+v\nwant %+v %+v", b.ID, a, am, b, bm)
		}
	}
	if gi, wi := msgIndexCopy(got), msgIndexCopy(want); !reflect.DeepEqual(gi, wi) {
		t.Fatalf("message-id index:\n got %v\nwant %v", gi, wi)
	}
	if got.AppliedIndex() != want.AppliedIndex() {
		t.Fatalf("applied index %d, want %d", got.AppliedIndex(), want.AppliedIndex())
	}
	if gt, wt := tombsCopy(got), tombsCopy(want); !reflect.DeepEqual(gt, wt) {
		t.Fatalf("tombstones:\n got %v\nwant %v", gt, wt)
	}
}

// tombsCopy lists the live tombstones as session → time and ids.
func tombsCopy(f *FSM) map[string]tombstone {
	out := map[string]tombstone{}
	for _, te := range f.liveTombs() {
		out[te.session] = *te.t
	}
	return out
}

// Replicas upgraded from a release whose snapshots had no tombstones still
// restore them: the sessions come back, and no ids are reserved.
func TestVersion1SnapshotStillRestores(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "snapshot_v1.hex"))
	if err != nil {
		t.Fatal(err)
	}
	v1, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	f := New(DefaultLimits)
	if err := restoreBytes(f, v1); err != nil {
		t.Fatalf("restore version 1: %v", err)
	}
	want := populatedBefore3(t)
	want.tombs, want.tombQueue = map[string]*tombstone{}, nil
	forgetVersions(want)
	sameState(t, f, want)
}

// Replicas upgraded from a release whose snapshots kept no message, fields
// or creation versions restore the same state with those versions unknown
// (0); change streams then resume such sessions with a snapshot event.
func TestVersion2SnapshotStillRestores(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "snapshot_v2.hex"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	f := New(DefaultLimits)
	if err := restoreBytes(f, v2); err != nil {
		t.Fatalf("restore version 2: %v", err)
	}
	want := populatedBefore3(t)
	forgetVersions(want)
	sameState(t, f, want)
}

// forgetVersions clears what snapshots before version 3 did not keep.
func forgetVersions(f *FSM) {
	for _, b := range f.buckets {
		for _, s := range b.sessions {
			s.created, s.fieldsVersion, s.ttl, s.expiresAt = 0, 0, 0, 0
			for i := range s.messages.recs {
				s.messages.recs[i].version = 0
			}
		}
	}
}

func TestSnapshotRestoreRoundTripsTheWholeState(t *testing.T) {
	src := populated(t)
	b := snapshotBytes(t, src)
	dst := New(DefaultLimits)
	rc := &closeTracker{Reader: bytes.NewReader(b)}
	if err := dst.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Errorf("Restore did not close the reader")
	}
	sameState(t, dst, src)
	checkInvariants(t, dst)
	if again := snapshotBytes(t, dst); !bytes.Equal(again, b) {
		t.Errorf("a snapshot of the restored FSM differs from the one it was restored from")
	}
}

func TestSnapshotOfEqualStatesIsByteIdentical(t *testing.T) {
	a, b := populated(t), populated(t)
	sa := snapshotBytes(t, a)
	if sb := snapshotBytes(t, b); !bytes.Equal(sa, sb) {
		t.Fatalf("two FSMs fed the same log produce different snapshots")
	}
	if again := snapshotBytes(t, a); !bytes.Equal(sa, again) {
		t.Fatalf("two snapshots of one state differ")
	}
}

// The snapshot format is what replicas exchange and store on disk: it must
// not change by accident. Run with -update after a deliberate format change
// (which also needs a new snapshotVersion).
func TestSnapshotMatchesGoldenBytes(t *testing.T) {
	path := filepath.Join("testdata", "snapshot_v3.hex")
	got := snapshotBytes(t, populated(t))
	if *update {
		if err := os.WriteFile(path, []byte(hex.EncodeToString(got)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("snapshot bytes changed:\n got %x\nwant %x", got, want)
	}
	// And an old snapshot still restores to the same state.
	f := New(DefaultLimits)
	if err := restoreBytes(f, want); err != nil {
		t.Fatalf("restore golden snapshot: %v", err)
	}
	sameState(t, f, populated(t))
}

func TestSnapshotIsFrozenWhileApplyContinues(t *testing.T) {
	f := populated(t)
	want := snapshotBytes(t, f)
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Writes after Snapshot, before Persist: appends that may share the
	// messages' backing arrays, field rewrites, deletes, new sessions, expiry.
	idx := f.AppliedIndex()
	for i, c := range []Command{
		appendCmd("a", msg("m4", "user", "late")),
		appendCmd("c", msg("m2", "user", "late"), msg("m3", "user", "late")),
		putCmd("a", "f", "[2]"),
		patchCmd("b", `{"z":null,"y":{"k":null}}`),
		deleteCmd("e"),
		appendCmd("new", msg("m1", "user", "late")),
		{Op: OpExpire, Before: 2500},
	} {
		c.At = 50_000
		applyLog(t, f, idx+uint64(i)+1, c)
	}
	if got := persist(t, snap); !bytes.Equal(got, want) {
		t.Fatalf("Persist wrote the state after later writes, not the state at Snapshot")
	}
	snap.Release()
}

func TestRestoreReplacesTheStateEntirely(t *testing.T) {
	src := populated(t)
	b := snapshotBytes(t, src)

	f := New(DefaultLimits)
	for i, c := range []Command{appendCmd("stale", msg("m1", "user", "x")), putCmd("a", "junk", "1"),
		appendCmd("a", msg("other", "user", "x"))} {
		applyLog(t, f, uint64(100+i), c)
	}
	if err := restoreBytes(f, b); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if _, ok := f.Get("stale"); ok {
		t.Errorf("a session absent from the snapshot survived Restore")
	}
	if _, ok := f.msgIndex["stale"]; ok {
		t.Errorf("message ids of a session absent from the snapshot survived Restore")
	}
	if a, _ := f.Get("a"); a != nil {
		if _, ok := a.Field("junk"); ok {
			t.Errorf("a field absent from the snapshot survived Restore")
		}
	}
	sameState(t, f, src) // includes the applied index going back from 102 to 8
}

func TestRestoreRebuildsTheMessageIDIndex(t *testing.T) {
	src := populated(t)
	f := New(DefaultLimits)
	if err := restoreBytes(f, snapshotBytes(t, src)); err != nil {
		t.Fatal(err)
	}
	mark := markState(t, f)
	stored, _ := f.Get("a")
	// Replaying a stored id is deduplicated, not appended again.
	r := applyLog(t, f, 20, appendCmd("a", msg("m2", "assistant", "")))
	if r.Status != StatusOK || r.Changed || r.Version != stored.Version || !reflect.DeepEqual(r.Messages, stored.Messages()[1:2]) {
		t.Fatalf("replay after Restore: %+v, want the stored message and no change", r)
	}
	mark.assertUnchanged(t, f)
	// Reusing a stored id with other content is still a conflict.
	if r := applyLog(t, f, 21, appendCmd("a", msg("m1", "user", "changed", `{"x":1}`))); r.Status != StatusIDConflict {
		t.Fatalf("conflicting id after Restore: %v, want %v", r.Status, StatusIDConflict)
	}
	// New messages continue the sequence.
	r = applyLog(t, f, 22, appendCmd("a", msg("m9", "user", "x"), msg("m1", "user", "hi", `{"x":1}`)))
	if r.Status != StatusOK || r.Messages[0].Seq != 4 || r.Messages[1].Seq != 1 {
		t.Fatalf("append after Restore: %+v, want seq 4 and the stored seq 1", r)
	}
	checkInvariants(t, f)
}

// Restore of anything but a complete snapshot fails and leaves the FSM as it
// was: sessions, message-id index and applied index.
func TestRestoreRejectsBadSnapshotsAndKeepsTheState(t *testing.T) {
	good := snapshotBytes(t, populated(t))
	header := good[:13]
	var bad = map[string][]byte{
		"empty":         {},
		"bad magic":     append([]byte("XSNP"), good[4:]...),
		"version 0":     append(append([]byte("SSNP"), 0), good[5:]...),
		"version 4":     append(append([]byte("SSNP"), 4), good[5:]...),
		"no end marker": good[:len(good)-1],
		"record length over the limit": append(append([]byte(nil), header...),
			0x80, 0x80, 0x80, 0x80, 0x08), // 2^31
		"record length overflows": append(append([]byte(nil), header...),
			0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"record with trailing bytes": append(append([]byte(nil), header...), 8, 1, 'x', 0, 0, 0, 0, 0, 0xAA, 0),
		"record too short":           append(append([]byte(nil), header...), 2, 1, 'x', 0),
		"message count too large":    append(append([]byte(nil), header...), 8, 1, 'x', 0, 0, 0, 0, 0x7f, 0, 0),
	}
	for n := 0; n < len(good)-1; n += 7 {
		bad["prefix "+itoa(n)] = good[:n]
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			f := populated(t)
			// Write something so that the live state differs from the snapshot.
			applyLog(t, f, 50, appendCmd("live", msg("m1", "user", "x")))
			mark := markState(t, f)
			applied := f.AppliedIndex()
			if err := restoreBytes(f, b); err == nil {
				t.Fatalf("Restore accepted %x", b)
			}
			mark.assertUnchanged(t, f)
			if f.AppliedIndex() != applied {
				t.Fatalf("applied index %d, want %d", f.AppliedIndex(), applied)
			}
		})
	}
}

func TestRestoreRejectsEveryTruncation(t *testing.T) {
	good := snapshotBytes(t, populated(t))
	f := New(DefaultLimits)
	for n := 0; n < len(good); n++ {
		if err := restoreBytes(f, good[:n]); err == nil {
			t.Fatalf("Restore accepted the first %d of %d bytes", n, len(good))
		}
	}
	if f.Len() != 0 || f.AppliedIndex() != 0 {
		t.Fatalf("failed restores changed the state")
	}
}

func TestRestoreOfAnEmptySnapshotEmptiesTheFSM(t *testing.T) {
	empty := snapshotBytes(t, New(DefaultLimits))
	if want := "SSNP\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"; string(empty) != want {
		t.Fatalf("empty snapshot %x, want %x", empty, want)
	}
	f := populated(t)
	if err := restoreBytes(f, empty); err != nil {
		t.Fatal(err)
	}
	if f.Len() != 0 || len(f.msgIndex) != 0 || f.AppliedIndex() != 0 {
		t.Fatalf("after restoring an empty snapshot: %d sessions, %d indexed, applied %d", f.Len(), len(f.msgIndex), f.AppliedIndex())
	}
}

func TestPersistCancelsTheSinkWhenWritingFails(t *testing.T) {
	f := New(DefaultLimits)
	for i := 0; i < 200; i++ { // enough to overflow Persist's write buffer
		applyLog(t, f, uint64(i+1), appendCmd("s"+itoa(i), msg("m", "user", strings.Repeat("x", 2000))))
	}
	for _, limit := range []int{1, 20, 300 << 10} {
		snap, err := f.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		sink := &bufSink{failAfter: limit}
		if err := snap.Persist(sink); !errors.Is(err, errSinkFull) {
			t.Errorf("limit %d: Persist = %v, want the sink's error", limit, err)
		}
		if !sink.canceled || sink.closed {
			t.Errorf("limit %d: sink canceled=%v closed=%v, want canceled and not closed", limit, sink.canceled, sink.closed)
		}
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
